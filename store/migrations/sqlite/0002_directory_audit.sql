-- Customers, custom roles and the audit log.
CREATE TABLE customers (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_time INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE roles (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    created_time INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Never holds a value: targets, outcomes and details such as versions and counts.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT,
    time        INTEGER NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    target_name TEXT,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_by_tenant_time ON audit_log (tenant_id, time);
CREATE INDEX audit_by_target ON audit_log (target_id);
