-- Every value a secret has had is a version. A version's value lives in `secrets` while it is
-- current and in `secret_history` while it is kept as an earlier value; a version with neither is
-- destroyed (its metadata stays). The state is derived from that, never stored twice.
-- `fingerprint`: the first 12 hex characters of HMAC-SHA-256 of the value under the tenant's
-- fingerprint key; NULL for versions written before versions existed, filled in at the next start.
CREATE TABLE secret_versions (
    secret_id    uuid NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version      bigint NOT NULL,
    created_time bigint NOT NULL,
    created_by   text,
    fingerprint  text,
    PRIMARY KEY (secret_id, version)
);

-- The values kept before: each was current from the previous one's replacement (or the secret's
-- creation) until its own.
INSERT INTO secret_versions (secret_id, version, created_time)
SELECT h.secret_id, h.version,
       COALESCE((SELECT MAX(p.replaced_time) FROM secret_history p
                 WHERE p.secret_id = h.secret_id AND p.version < h.version),
                CASE WHEN h.version = 1 THEN s.created_time ELSE h.replaced_time END)
FROM secret_history h JOIN secrets s ON s.id = h.secret_id;

INSERT INTO secret_versions (secret_id, version, created_time)
SELECT s.id, s.version,
       COALESCE((SELECT MAX(p.replaced_time) FROM secret_history p WHERE p.secret_id = s.id), s.created_time)
FROM secrets s;

-- How many versions a secret keeps with their values (the current one included).
ALTER TABLE secrets ADD COLUMN max_versions bigint NOT NULL DEFAULT 10;
