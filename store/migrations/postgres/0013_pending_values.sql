-- A staged rotation: at most one pending value per secret, waiting to be promoted. It is sealed
-- for the version it will become (current + 1), so promoting moves nothing but the row. Every
-- value change deletes it (a pending value never outlives the version it was staged on).
CREATE TABLE secret_pending (
    secret_id    uuid PRIMARY KEY REFERENCES secrets(id) ON DELETE CASCADE,
    version      bigint NOT NULL,
    key_id       bigint NOT NULL REFERENCES data_keys(id),
    nonce        bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext   bytea NOT NULL,
    file_name    text,
    created_time bigint NOT NULL,
    created_by   text,
    fingerprint  text NOT NULL
);

-- What each consumer said to the pending value: one row per configuration, node and field.
CREATE TABLE secret_probes (
    secret_id  uuid NOT NULL REFERENCES secret_pending(secret_id) ON DELETE CASCADE,
    version    bigint NOT NULL,
    owner_type text NOT NULL,
    owner_id   uuid NOT NULL,
    owner_name text NOT NULL,
    node_id    text NOT NULL,
    node_name  text,
    field      text NOT NULL,
    result     text NOT NULL,
    reason     text NOT NULL,
    time       bigint NOT NULL,
    PRIMARY KEY (secret_id, owner_id, node_id, field)
);
