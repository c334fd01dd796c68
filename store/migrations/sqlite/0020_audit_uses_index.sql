-- Use counts are merged into the entry of their secret, configuration and minute when they are
-- written: find that entry by an index (as PostgreSQL's audit_uses_per_minute does) instead of
-- walking every entry of the tenant's minute for each count (with thousands of configurations
-- using secrets, a flush of one minute's counts was quadratic: minutes at 10,000 chains).
CREATE INDEX audit_uses_per_minute ON audit_log (tenant_id, actor_id, target_id, time) WHERE action = 'USE';
