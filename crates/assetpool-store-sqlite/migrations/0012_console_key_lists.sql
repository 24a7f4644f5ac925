-- The console's key list (filters by environment, application and state, a
-- search by id, prefix or name; keyset pages in creation order): each
-- combination is its own statement (no `$n IS NULL OR ...`), answered by one
-- of these indexes at a million keys. A state's partial index holds that state's
-- condition word for word as the query writes it.
CREATE INDEX api_keys_by_environment_creation ON api_keys (environment, created_at, id);
CREATE INDEX api_keys_usable_by_creation ON api_keys (created_at, id)
    WHERE revoked_at IS NULL AND disabled_at IS NULL;
CREATE INDEX api_keys_revoked_by_creation ON api_keys (created_at, id)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_disabled_by_creation ON api_keys (created_at, id)
    WHERE revoked_at IS NULL AND disabled_at IS NOT NULL;
CREATE INDEX api_keys_expiring_by_creation ON api_keys (created_at, id)
    WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
CREATE INDEX api_keys_by_name ON api_keys (name);
