-- The console's owner view: an application's alerts are read from its keys
-- (api_keys_by_application_creation) to their alerts, newest first; a key's
-- owner-webhook deliveries (signed with `key:<id>`) newest first.
CREATE INDEX alerts_by_key ON alerts (api_key_id, seq) WHERE api_key_id IS NOT NULL;
CREATE INDEX webhook_deliveries_by_destination ON webhook_deliveries (secret_ref, created_at);
