-- 0017 counted the rows it saw, then created the triggers that keep the counts: a write committed
-- in between by an instance still running the version before it (during a rolling upgrade) was
-- neither in the count nor seen by a trigger, and the tenant's count stayed off for good (a
-- place refused that the tenant has, or one given that it has not). Count again, with no write
-- in flight: every write that changes what is counted changes `tenant_usage` through a trigger
-- (taking ROW EXCLUSIVE on it), so this lock waits for the writes that already counted to commit,
-- and holds back the others until the recount is committed; their triggers then count on top of
-- it. Only `tenant_usage` is locked, and the rows are only read: no lock order to deadlock on.
LOCK TABLE tenant_usage IN EXCLUSIVE MODE;

DELETE FROM tenant_usage;

INSERT INTO tenant_usage (tenant_id, secrets, secret_bytes)
SELECT s.tenant_id, COUNT(*),
       SUM(octet_length(s.ciphertext))
       + COALESCE(SUM((SELECT SUM(octet_length(h.ciphertext)) FROM secret_history h WHERE h.secret_id = s.id)), 0)
       + COALESCE(SUM((SELECT octet_length(p.ciphertext) FROM secret_pending p WHERE p.secret_id = s.id)), 0)
FROM secrets s GROUP BY s.tenant_id;
