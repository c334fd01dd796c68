-- Veil schema, PostgreSQL flavour: the SQLite migrations 0001..0005 combined (no PostgreSQL
-- deployment predates this file), with the same tables, keys, cascades and checks. Several
-- instances share one database, so every rule that must hold across them is a constraint here.
-- Types: ids are uuid (audit actor/target ids stay text: they hold user and configuration ids
-- alike), times are bigint milliseconds since the epoch, ciphertext is bytea. Configuration
-- bodies, role lists, grants and audit details are text holding the JSON exactly as written
-- (jsonb would refuse "\u0000" in a string and reorder keys). Values are stored only as
-- AES-256-GCM ciphertext.

CREATE TABLE tenants (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    created_time bigint NOT NULL
);

-- Tenants deleted so far (PostgreSQL only: several instances write). A secret or configuration
-- write of another instance that was in flight when its tenant was deleted is refused instead of
-- leaving rows of a tenant that no longer exists: writers hold FOR KEY SHARE on the tenant's row
-- until they commit, the delete takes FOR UPDATE on it first, and a writer that finds the row
-- gone looks here.
CREATE TABLE deleted_tenants (
    id           uuid PRIMARY KEY,
    deleted_time bigint NOT NULL
);

CREATE TABLE users (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    customer_id        uuid,
    username           text NOT NULL UNIQUE,
    password_hash      text NOT NULL,
    roles              text NOT NULL,
    created_time       bigint NOT NULL,
    -- Tokens issued before this time are refused: set on a password change and on logout.
    tokens_valid_after bigint NOT NULL DEFAULT 0
);
CREATE INDEX users_by_tenant ON users (tenant_id);
CREATE INDEX users_by_customer ON users (customer_id);

-- Data keys, each wrapped by the master key (nonce || ciphertext).
CREATE TABLE data_keys (
    id           bigint PRIMARY KEY,
    wrapped      bytea NOT NULL,
    created_time bigint NOT NULL
);

-- Internal values such as the token signing key, encrypted like secrets.
CREATE TABLE system_secrets (
    name       text PRIMARY KEY,
    key_id     bigint NOT NULL REFERENCES data_keys(id),
    nonce      bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext bytea NOT NULL
);

CREATE TABLE secrets (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    name         text NOT NULL,
    type         text NOT NULL CHECK (type IN ('TEXT', 'FILE')),
    description  text NOT NULL,
    file_name    text,
    version      bigint NOT NULL CHECK (version >= 1),
    created_time bigint NOT NULL,
    updated_time bigint NOT NULL,
    key_id       bigint NOT NULL REFERENCES data_keys(id),
    nonce        bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext   bytea NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE secret_shares (
    secret_id   uuid NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    PRIMARY KEY (secret_id, customer_id)
);
CREATE INDEX secret_shares_by_customer ON secret_shares (customer_id);

-- Earlier values of a secret, kept only so that they stay masked (after a restart too, and in
-- configurations created after a value change): the last 5 per secret, written in the same
-- transaction as the value change and deleted with the secret. Each is the ciphertext exactly as it
-- was in `secrets`: its associated data binds it to the tenant, the secret id and `version`, so it
-- decrypts only as that secret's value of that version. Never returned by any API.
CREATE TABLE secret_history (
    secret_id     uuid NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version       bigint NOT NULL,
    key_id        bigint NOT NULL REFERENCES data_keys(id),
    nonce         bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext    bytea NOT NULL,
    replaced_time bigint NOT NULL,
    PRIMARY KEY (secret_id, version)
);

-- Configurations that may reference secrets (rule chains, integrations).
CREATE TABLE owners (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    type         text NOT NULL CHECK (type IN ('RULE_CHAIN', 'INTEGRATION')),
    name         text NOT NULL,
    customer_id  uuid,
    body         text NOT NULL,
    created_time bigint NOT NULL,
    updated_time bigint NOT NULL
);
CREATE INDEX owners_by_tenant ON owners (tenant_id, type);
CREATE INDEX owners_by_customer ON owners (customer_id);

-- RESTRICT makes the database itself refuse to delete a referenced secret, whatever the
-- interleaving: inserting a reference locks the secret's row (FOR KEY SHARE) until commit, and a
-- delete that commits first makes the insert fail.
CREATE TABLE secret_refs (
    secret_id uuid NOT NULL REFERENCES secrets(id) ON DELETE RESTRICT,
    owner_id  uuid NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    node_id   text,
    node_name text,
    pointer   text NOT NULL
);
CREATE INDEX secret_refs_by_secret ON secret_refs (secret_id);
CREATE INDEX secret_refs_by_owner ON secret_refs (owner_id);

-- A configuration that uses another one: a rule chain's integration_downlink node and the
-- integration it sends through. The (checked at statement end) foreign key keeps a used
-- integration from being deleted.
CREATE TABLE owner_links (
    owner_id  uuid NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    target_id uuid NOT NULL REFERENCES owners(id),
    node_id   text,
    node_name text,
    pointer   text NOT NULL
);
CREATE INDEX owner_links_by_target ON owner_links (target_id);
CREATE INDEX owner_links_by_owner ON owner_links (owner_id);

-- Customers, custom roles and the audit log.
CREATE TABLE customers (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         text NOT NULL,
    created_time bigint NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE roles (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         text NOT NULL,
    permissions  text NOT NULL,
    created_time bigint NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Never holds a value: targets, outcomes and details such as versions and counts.
CREATE TABLE audit_log (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id   uuid,
    time        bigint NOT NULL,
    actor_id    text,
    actor_name  text NOT NULL,
    action      text NOT NULL,
    target_type text,
    target_id   text,
    target_name text,
    outcome     text NOT NULL CHECK (outcome IN ('SUCCESS', 'FAILURE')),
    details     text NOT NULL
);
CREATE INDEX audit_by_tenant_time ON audit_log (tenant_id, time);
CREATE INDEX audit_by_target ON audit_log (target_id);
-- One entry per secret, configuration and minute of use: instances flushing the same minute add
-- their counts to it (INSERT ... ON CONFLICT) instead of writing a second one.
CREATE UNIQUE INDEX audit_uses_per_minute ON audit_log (tenant_id, actor_id, target_id, time)
    WHERE action = 'USE';
