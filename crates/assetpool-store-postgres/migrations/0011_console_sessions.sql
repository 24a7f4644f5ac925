-- The web console's sessions (`/console/`): the cookie's secret is stored as
-- its SHA-256 only; a session ends at sign-out (ended_at), at expires_at, after
-- idleness (last_seen_at), and when its user is disabled or changes password
-- (password_version, compared with the user's on every request).
CREATE TABLE console_sessions (
    id               TEXT PRIMARY KEY,
    secret_hash      BYTEA NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users (id),
    password_version BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    ended_at         BIGINT
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_ended ON console_sessions (ended_at) WHERE ended_at IS NOT NULL;
-- The console's owner view lists one application's keys in creation order
-- (keyset pages): one index serves the filter and the order (ids compared
-- bytewise, as in SQLite).
CREATE INDEX api_keys_by_application_creation ON api_keys (application_id, created_at, id COLLATE "C");
