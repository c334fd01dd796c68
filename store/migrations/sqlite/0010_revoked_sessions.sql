-- Sessions ended one at a time (a logout ends the session it is sent with): a token carrying one
-- of these session ids is refused until it would have expired anyway, then the row may go.
CREATE TABLE revoked_sessions (
    sid          TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_time INTEGER NOT NULL
);
CREATE INDEX revoked_sessions_by_user ON revoked_sessions (user_id);
