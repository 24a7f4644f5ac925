-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE applications (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications (id),
    name           TEXT NOT NULL,
    environment    TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    key_hash       BYTEA NOT NULL UNIQUE,
    prefix         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    revoked_reason TEXT,
    successor_id   TEXT REFERENCES api_keys (id),
    last_used_at   BIGINT
);
CREATE INDEX api_keys_by_application ON api_keys (application_id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    application_id    TEXT NOT NULL REFERENCES applications (id),
    api_key_id        TEXT NOT NULL REFERENCES api_keys (id),
    created_at        BIGINT NOT NULL,
    access_expires_at BIGINT NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_live_by_application ON sessions (application_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_revoked_by_expiry ON sessions (access_expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    algorithm          TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    public_key         BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT,
    retires_at         BIGINT,
    -- 1 for the active key, NULL otherwise: at most one active key.
    active             SMALLINT UNIQUE CHECK (active = 1)
);

-- The change feed other servers follow. Writers take an advisory transaction
-- lock before appending, so ids become visible in increasing order.
CREATE TABLE changes (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject    TEXT,
    until_at   BIGINT,
    created_at BIGINT NOT NULL
);
