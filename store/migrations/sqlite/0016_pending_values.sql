-- A staged rotation: at most one pending value per secret, waiting to be promoted. It is sealed
-- for the version it will become (current + 1), so promoting moves nothing but the row. Every
-- value change deletes it (a pending value never outlives the version it was staged on).
CREATE TABLE secret_pending (
    secret_id    TEXT PRIMARY KEY REFERENCES secrets(id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    key_id       INTEGER NOT NULL REFERENCES data_keys(id),
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    file_name    TEXT,
    created_time INTEGER NOT NULL,
    created_by   TEXT,
    fingerprint  TEXT NOT NULL
);

-- What each consumer said to the pending value: one row per configuration, node and field.
CREATE TABLE secret_probes (
    secret_id  TEXT NOT NULL REFERENCES secret_pending(secret_id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    owner_name TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    node_name  TEXT,
    field      TEXT NOT NULL,
    result     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    time       INTEGER NOT NULL,
    PRIMARY KEY (secret_id, owner_id, node_id, field)
);
