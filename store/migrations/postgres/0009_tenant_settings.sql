-- Tenant settings beside destinations_required: a value change must name the version it is based
-- on (If-Match), and values with suspicious whitespace, quotes or length are refused instead of
-- accepted with a warning. 1 = on (integers, as in SQLite, so `veil migrate` copies them as they are).
ALTER TABLE tenants ADD COLUMN cas_required bigint NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN strict_values bigint NOT NULL DEFAULT 0;
