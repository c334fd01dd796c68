-- Tokens issued before this time (milliseconds since the epoch) are refused: set on a password change
-- and on logout.
ALTER TABLE users ADD COLUMN tokens_valid_after INTEGER NOT NULL DEFAULT 0;
