-- Tenant settings beside destinations_required: a value change must name the version it is based
-- on (If-Match), and values with suspicious whitespace, quotes or length are refused instead of
-- accepted with a warning. 1 = on.
ALTER TABLE tenants ADD COLUMN cas_required INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN strict_values INTEGER NOT NULL DEFAULT 0;
