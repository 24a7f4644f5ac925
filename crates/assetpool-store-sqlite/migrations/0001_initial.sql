-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE applications (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    application_id TEXT NOT NULL REFERENCES applications (id),
    name           TEXT NOT NULL,
    environment    TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
    key_hash       BLOB NOT NULL UNIQUE,
    prefix         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    successor_id   TEXT REFERENCES api_keys (id),
    last_used_at   INTEGER
);
CREATE INDEX api_keys_by_application ON api_keys (application_id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id),
    application_id    TEXT NOT NULL REFERENCES applications (id),
    api_key_id        TEXT NOT NULL REFERENCES api_keys (id),
    created_at        INTEGER NOT NULL,
    access_expires_at INTEGER NOT NULL,
    revoked_at        INTEGER
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_live_by_application ON sessions (application_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_revoked_by_expiry ON sessions (access_expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    algorithm          TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    public_key         BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    retired_at         INTEGER,
    retires_at         INTEGER,
    -- 1 for the active key, NULL otherwise: at most one active key.
    active             INTEGER UNIQUE CHECK (active = 1)
);

-- The change feed other servers follow to keep their in-memory state fresh.
CREATE TABLE changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    subject    TEXT,
    until_at   INTEGER,
    created_at INTEGER NOT NULL
);
