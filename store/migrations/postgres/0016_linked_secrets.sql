-- A linked secret's source ({"provider", "key", ...} as JSON): its value lives in a provider and is
-- never written here (its ciphertext column holds an encrypted empty value).
ALTER TABLE secrets ADD COLUMN source text;
-- Secret providers are configurations too (their credentials are tracked references).
ALTER TABLE owners DROP CONSTRAINT owners_type_check;
ALTER TABLE owners ADD CONSTRAINT owners_type_check CHECK (type IN ('RULE_CHAIN', 'INTEGRATION', 'SECRET_PROVIDER'));
