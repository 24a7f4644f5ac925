-- Monitoring: per-key usage series, addresses and networks, alerts with
-- their webhook outbox, per-key owner webhooks, and the append-only audit log.

-- resolution: 'minute', 'hour' or 'day'; bucket_start aligned on the epoch.
CREATE TABLE api_key_usage (
    api_key_id   TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    resolution   TEXT NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, resolution, bucket_start, outcome)
);
CREATE INDEX api_key_usage_by_time ON api_key_usage (resolution, bucket_start);

-- Distinct client addresses per key and day (day start).
CREATE TABLE api_key_addresses (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day        INTEGER NOT NULL,
    address    TEXT NOT NULL,
    PRIMARY KEY (api_key_id, day, address)
);
CREATE INDEX api_key_addresses_by_day ON api_key_addresses (day);

CREATE TABLE api_key_networks (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    network    TEXT NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, network)
);
CREATE INDEX api_key_networks_by_time ON api_key_networks (last_seen);

-- The latest use of each key with its client address (api_keys.last_used_at
-- is kept in step).
CREATE TABLE api_key_last_use (
    api_key_id TEXT PRIMARY KEY NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    used_at    INTEGER NOT NULL,
    address    TEXT
);

CREATE TABLE alerts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    rule        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    api_key_id  TEXT,
    account     TEXT,
    evidence    TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    acked_at    INTEGER,
    acked_by    TEXT
);
CREATE INDEX alerts_open_episode ON alerts (rule, subject, last_seen) WHERE acked_at IS NULL;
CREATE INDEX alerts_by_last_seen ON alerts (last_seen);

-- The webhook outbox: a row per destination of an alert, claimed with a lease.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    alert_id        TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    secret_ref      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    given_up_at     INTEGER,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, created_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;

CREATE TABLE api_key_webhooks (
    api_key_id    TEXT PRIMARY KEY NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Append-only: the triggers refuse any change or deletion of an entry.
CREATE TABLE audit_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    actor_id TEXT,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    error    TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Expiry warnings look up usable keys by expiry.
CREATE INDEX api_keys_live_by_expiry ON api_keys (expires_at)
    WHERE revoked_at IS NULL AND successor_id IS NULL AND expires_at IS NOT NULL;
