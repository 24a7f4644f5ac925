//! Validated server settings (built by the command line from flags,
//! environment, config file and defaults, in that order of precedence).

use assetpool_core::hashing::HashingPoolSettings;
use assetpool_core::password::Argon2Settings;
use assetpool_core::Environment;
use secrecy::SecretBox;
use std::time::Duration;

/// Default database URL.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://assetpool-data/assetpool.db";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default access token lifetime (seconds).
pub const DEFAULT_TOKEN_TTL: u64 = 86_400;
/// Default refresh token lifetime (seconds).
pub const DEFAULT_REFRESH_TTL: u64 = 2_592_000;
/// Default maximum staleness of the in-memory state (seconds).
pub const DEFAULT_MAX_STALENESS: u64 = 30;
/// Default time the upstream has to send its response headers (seconds).
pub const DEFAULT_UPSTREAM_TIMEOUT: u64 = 30;
/// Default audience of access tokens.
pub const DEFAULT_AUDIENCE: &str = "assetpool";

/// Everything `serve` needs.
#[derive(Debug)]
pub struct ServerSettings {
    /// Storage URL (`sqlite://...`).
    pub database_url: String,
    /// Address to listen on (port 0 picks a free one).
    pub listen: String,
    /// The server's environment.
    pub environment: Environment,
    /// Access token lifetime.
    pub token_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Issuer override; by default the one recorded in the database.
    pub issuer: Option<String>,
    /// Audience of access tokens.
    pub audience: String,
    /// Key-encryption key for signing keys at rest.
    pub signing_key_kek: Option<SecretBox<str>>,
    /// Argon2id parameters for new hashes.
    pub argon2: Argon2Settings,
    /// Size of the password hashing pool.
    pub hashing: HashingPoolSettings,
    /// Longest time a request may take.
    pub request_timeout: Duration,
    /// How often the change feed is followed.
    pub change_poll_interval: Duration,
    /// How often buffered key usage is written.
    pub usage_flush_interval: Duration,
    /// How long protected requests are checked from memory while storage is
    /// unreachable, before they fail closed with 503.
    pub max_staleness: Duration,
    /// Reverse-proxy mode: the upstream (`http://HOST:PORT`) that accepted
    /// requests outside assetpool's own routes are forwarded to.
    pub upstream: Option<axum::http::Uri>,
    /// How long the upstream has to send its response headers.
    pub upstream_timeout: Duration,
}

impl ServerSettings {
    /// Defaults for everything, on `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        ServerSettings {
            database_url: database_url.into(),
            listen: DEFAULT_LISTEN.to_owned(),
            environment: Environment::Production,
            token_ttl: Duration::from_secs(DEFAULT_TOKEN_TTL),
            refresh_ttl: Duration::from_secs(DEFAULT_REFRESH_TTL),
            issuer: None,
            audience: DEFAULT_AUDIENCE.to_owned(),
            signing_key_kek: None,
            argon2: Argon2Settings::default(),
            hashing: HashingPoolSettings::default(),
            request_timeout: Duration::from_secs(30),
            change_poll_interval: Duration::from_millis(200),
            usage_flush_interval: Duration::from_secs(5),
            max_staleness: Duration::from_secs(DEFAULT_MAX_STALENESS),
            upstream: None,
            upstream_timeout: Duration::from_secs(DEFAULT_UPSTREAM_TIMEOUT),
        }
    }
}
