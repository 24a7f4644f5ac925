-- Per-key rate limits and quotas; login-failure counters shared by every server.

ALTER TABLE api_keys ADD COLUMN rate_requests INTEGER;
ALTER TABLE api_keys ADD COLUMN rate_unit_seconds INTEGER;
ALTER TABLE api_keys ADD COLUMN rate_burst INTEGER;
ALTER TABLE api_keys ADD COLUMN quota_requests INTEGER;
ALTER TABLE api_keys ADD COLUMN quota_period TEXT CHECK (quota_period IN ('hour', 'day', 'month'));

CREATE TABLE api_key_quota_usage (
    api_key_id   TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    period_start INTEGER NOT NULL,
    requests     INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, period_start)
);
CREATE INDEX api_key_quota_usage_by_period ON api_key_quota_usage (period_start);

-- scope: 'pair' (account and address), 'address' (account = '') or
-- 'account' (address = '').
CREATE TABLE login_failures (
    scope        TEXT NOT NULL CHECK (scope IN ('pair', 'address', 'account')),
    account      TEXT NOT NULL,
    address      TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    api_key_id   TEXT,
    PRIMARY KEY (scope, account, address)
);
CREATE INDEX login_failures_by_time ON login_failures (last_failure);
CREATE INDEX login_failures_by_account ON login_failures (account);

CREATE TABLE login_known_addresses (
    account      TEXT NOT NULL,
    address      TEXT NOT NULL,
    last_success INTEGER NOT NULL,
    PRIMARY KEY (account, address)
);
CREATE INDEX login_known_addresses_by_time ON login_known_addresses (last_success);
