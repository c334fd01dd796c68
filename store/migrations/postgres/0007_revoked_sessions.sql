-- Sessions ended one at a time (a logout ends the session it is sent with): a token carrying one
-- of these session ids is refused until it would have expired anyway, then the row may go. Every
-- instance hears of a new one through the change feed (it clears its sessions kept in memory).
CREATE TABLE revoked_sessions (
    sid          text PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_time bigint NOT NULL
);
CREATE INDEX revoked_sessions_by_user ON revoked_sessions (user_id);
CREATE TRIGGER revoked_sessions_changed AFTER INSERT OR UPDATE OR DELETE ON revoked_sessions
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('sid');
