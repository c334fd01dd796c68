-- Where each secret's value may be sent: a JSON array of host patterns (empty: anywhere). Text,
-- like the configurations' bodies: read and written whole by Veil.
ALTER TABLE secrets ADD COLUMN allowed_destinations text NOT NULL DEFAULT '[]';
