-- A configuration that uses another one: a rule chain's integration_downlink node and the
-- integration it sends through. The (checked at statement end) foreign key keeps a used
-- integration from being deleted, while a tenant's owners can still go in one statement.
CREATE TABLE owner_links (
    owner_id  TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    target_id TEXT NOT NULL REFERENCES owners(id),
    node_id   TEXT,
    node_name TEXT,
    pointer   TEXT NOT NULL
);
CREATE INDEX owner_links_by_target ON owner_links (target_id);
CREATE INDEX owner_links_by_owner ON owner_links (owner_id);
