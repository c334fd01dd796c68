-- A tenant may require every secret to name its allowed destinations: 1 = a secret with an empty
-- list is sent nowhere. (An integer, as in SQLite, so `veil migrate` copies it as it is.)
ALTER TABLE tenants ADD COLUMN destinations_required bigint NOT NULL DEFAULT 0;
