-- When each configuration last used each secret (the start of the minute, from the use counts),
-- kept apart from the audit log so that it outlives the audit retention. No change feed: it is
-- read from the database when asked for.
CREATE TABLE secret_uses (
    secret_id      uuid NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    owner_id       uuid NOT NULL,
    last_used_time bigint NOT NULL,
    PRIMARY KEY (secret_id, owner_id)
);
