-- The console's owner view: an application's alerts are read from its keys
-- (api_keys_by_application_creation) to their alerts, newest first; a key's
-- owner-webhook deliveries (signed with `key:<id>`) newest first.
CREATE INDEX alerts_by_key ON alerts (api_key_id, seq) WHERE api_key_id IS NOT NULL;
CREATE INDEX webhook_deliveries_by_destination ON webhook_deliveries (secret_ref, created_at);
-- The console's overview: every key's usage summed per bucket and outcome,
-- kept by each usage flush in its transaction (so the overview reads a few
-- rows per bucket, however many keys are in use), pruned like the buckets.
CREATE TABLE api_key_usage_totals (
    resolution   TEXT NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (resolution, bucket_start, outcome)
);
INSERT INTO api_key_usage_totals (resolution, bucket_start, outcome, count)
    SELECT resolution, bucket_start, outcome, SUM(count) FROM api_key_usage
    GROUP BY resolution, bucket_start, outcome;
