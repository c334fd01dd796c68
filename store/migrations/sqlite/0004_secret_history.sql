-- Earlier values of a secret, kept only so that they stay masked (after a restart too, and in
-- configurations created after a value change): the last 5 per secret, written in the same
-- transaction as the value change and deleted with the secret. Each is the ciphertext exactly as it
-- was in `secrets`: its associated data binds it to the tenant, the secret id and `version`, so it
-- decrypts only as that secret's value of that version. Never returned by any API.
CREATE TABLE secret_history (
    secret_id     TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    key_id        INTEGER NOT NULL REFERENCES data_keys(id),
    nonce         BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    replaced_time INTEGER NOT NULL,
    PRIMARY KEY (secret_id, version)
);
