-- Counts password changes (not re-hashes of the same password): a login opens
-- its session only if the version it verified is still the stored one, and a
-- re-hash is written only over the version it verified.
ALTER TABLE users ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;
