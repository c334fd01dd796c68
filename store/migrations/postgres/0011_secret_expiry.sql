-- When a secret expires (set by its owner, e.g. a token's known expiry), and what a FILE value is:
-- its first certificate and its private key, as JSON metadata read at upload (never key material).
ALTER TABLE secrets ADD COLUMN expires_at bigint;
ALTER TABLE secrets ADD COLUMN certificate text;
ALTER TABLE secrets ADD COLUMN private_key text;
