-- When each configuration last used each secret (the start of the minute, from the use counts),
-- kept apart from the audit log so that it outlives the audit retention.
CREATE TABLE secret_uses (
    secret_id      TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    owner_id       TEXT NOT NULL,
    last_used_time INTEGER NOT NULL,
    PRIMARY KEY (secret_id, owner_id)
);
