-- Veil schema, SQLite flavour. Values are stored only as AES-256-GCM ciphertext.
CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    created_time INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    customer_id   TEXT,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_time  INTEGER NOT NULL
);

-- Data keys, each wrapped by the master key (nonce || ciphertext).
CREATE TABLE data_keys (
    id           INTEGER PRIMARY KEY,
    wrapped      BLOB NOT NULL,
    created_time INTEGER NOT NULL
);

-- Internal values such as the token signing key, encrypted like secrets.
CREATE TABLE system_secrets (
    name       TEXT PRIMARY KEY,
    key_id     INTEGER NOT NULL REFERENCES data_keys(id),
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL
);

CREATE TABLE secrets (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('TEXT', 'FILE')),
    description  TEXT NOT NULL,
    file_name    TEXT,
    version      INTEGER NOT NULL,
    created_time INTEGER NOT NULL,
    updated_time INTEGER NOT NULL,
    key_id       INTEGER NOT NULL REFERENCES data_keys(id),
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE secret_shares (
    secret_id   TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (secret_id, customer_id)
);

-- Configurations that may reference secrets (rule chains, integrations).
CREATE TABLE owners (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    type         TEXT NOT NULL,
    name         TEXT NOT NULL,
    customer_id  TEXT,
    body         TEXT NOT NULL,
    created_time INTEGER NOT NULL,
    updated_time INTEGER NOT NULL
);

-- RESTRICT makes the database itself refuse to delete a referenced secret, whatever the interleaving.
CREATE TABLE secret_refs (
    secret_id TEXT NOT NULL REFERENCES secrets(id) ON DELETE RESTRICT,
    owner_id  TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    node_id   TEXT,
    node_name TEXT,
    pointer   TEXT NOT NULL
);
CREATE INDEX secret_refs_by_secret ON secret_refs (secret_id);
CREATE INDEX secret_refs_by_owner ON secret_refs (owner_id);
