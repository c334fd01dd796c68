-- A tenant may require every secret to name its allowed destinations: 1 = a secret with an empty
-- list is sent nowhere.
ALTER TABLE tenants ADD COLUMN destinations_required INTEGER NOT NULL DEFAULT 0;
