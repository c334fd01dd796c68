-- A linked secret's source ({"provider", "key", ...} as JSON): its value lives in a provider and is
-- never written here (its ciphertext column holds an encrypted empty value).
ALTER TABLE secrets ADD COLUMN source TEXT;
