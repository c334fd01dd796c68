-- Where each secret's value may be sent: a JSON array of host patterns (empty: anywhere).
ALTER TABLE secrets ADD COLUMN allowed_destinations TEXT NOT NULL DEFAULT '[]';
