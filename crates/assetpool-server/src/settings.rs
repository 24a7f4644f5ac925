//! Validated server settings (built by the command line from flags,
//! environment, config file and defaults, in that order of precedence).

use crate::extract::client_address::ForwardedHeader;
use assetpool_core::hashing::HashingPoolSettings;
use assetpool_core::password::Argon2Settings;
use assetpool_core::Environment;
use ipnet::IpNet;
use secrecy::SecretBox;
use std::path::PathBuf;
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
/// Default time a WebSocket tunnel of reverse-proxy mode may carry no byte
/// either way (seconds; AWS API Gateway's WebSocket idle limit).
pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: u64 = 600;
/// Default longest life of a WebSocket tunnel of reverse-proxy mode
/// (seconds; AWS API Gateway's WebSocket connection limit).
pub const DEFAULT_TUNNEL_MAX_LIFETIME: u64 = 7_200;
/// Default cap on the WebSocket tunnels of reverse-proxy mode open at once
/// on one server: half of [`DEFAULT_MAX_CONNECTIONS`] (the command line takes
/// half of `--max-connections` when it is set), so that tunnels, which hold
/// their connection for hours, can never take the places plain requests need.
pub const DEFAULT_MAX_TUNNELS: usize = DEFAULT_MAX_CONNECTIONS / 2;
/// Default cap on the tunnels of one API key: a fifth of
/// [`DEFAULT_MAX_TUNNELS`] (the command line takes a fifth of `--max-tunnels`),
/// so that one key, and whoever holds one of its tokens, cannot take every
/// tunnel place from the server's other applications.
pub const DEFAULT_MAX_TUNNELS_PER_KEY: usize = DEFAULT_MAX_TUNNELS / 5;
/// Default audience of access tokens.
pub const DEFAULT_AUDIENCE: &str = "assetpool";
/// Default cap on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time a client has to send a complete request head, TLS handshake
/// included (seconds).
pub const DEFAULT_HEADER_READ_TIMEOUT: u64 = 10;
/// Default time an idle keep-alive connection is kept open (seconds).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: u64 = 75;
/// Default largest request head (request line and headers), in bytes.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// Smallest accepted `--max-header-size`.
pub const MIN_MAX_HEADER_SIZE: usize = 1024;
/// Largest accepted `--max-header-size` (below hyper's read buffer of about 400 KiB).
pub const MAX_MAX_HEADER_SIZE: usize = 256 * 1024;
/// Default largest number of request headers.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default time between SIGTERM and closing the listening socket, while
/// `/readyz` answers 503 (seconds).
pub const DEFAULT_SHUTDOWN_DELAY: u64 = 0;
/// Default longest wait for open connections to finish after the listening
/// socket is closed (seconds).
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 20;

/// Limits of the HTTP listener, applied to every client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Open connections at most; further clients wait in the kernel's accept
    /// queue until a connection closes.
    pub max_connections: usize,
    /// Time from accepting a connection (TLS handshake included), or from the
    /// first byte of a following request, to its complete request head;
    /// beyond, the connection is closed.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle between requests; beyond, it
    /// is closed.
    pub keep_alive_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; beyond, 431.
    pub max_header_size: usize,
    /// Largest number of request headers; beyond, 431.
    pub max_headers: usize,
    /// After SIGTERM, how long `/readyz` answers 503 while requests are still
    /// accepted, so load balancers take the server out before it stops listening.
    pub shutdown_delay: Duration,
    /// After the listening socket is closed, how long open connections (and
    /// tunnels) have to finish; the rest are then closed.
    pub shutdown_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT),
            keep_alive_timeout: Duration::from_secs(DEFAULT_KEEP_ALIVE_TIMEOUT),
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
            shutdown_delay: Duration::from_secs(DEFAULT_SHUTDOWN_DELAY),
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT),
        }
    }
}

/// Limits of the WebSocket tunnels of reverse-proxy mode. Besides these, a
/// tunnel ends with its credentials: at its token's `exp`, and within a
/// second of a logout, key revocation, user disable or password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelSettings {
    /// Time a tunnel may carry no byte in either direction; beyond, it is closed.
    pub idle_timeout: Duration,
    /// Longest life of a tunnel, however busy.
    pub max_lifetime: Duration,
    /// Tunnels open (or being opened) at once on the server; beyond, an
    /// upgrade is refused with 503 `overloaded`. Keep it below
    /// [`ListenerSettings::max_connections`]: each tunnel holds a connection.
    pub max_open: usize,
    /// Tunnels open (or being opened) at once with one API key; beyond, an
    /// upgrade with that key is refused with 429 `rate_limited`.
    pub max_per_key: usize,
}

impl Default for TunnelSettings {
    fn default() -> Self {
        TunnelSettings {
            idle_timeout: Duration::from_secs(DEFAULT_TUNNEL_IDLE_TIMEOUT),
            max_lifetime: Duration::from_secs(DEFAULT_TUNNEL_MAX_LIFETIME),
            max_open: DEFAULT_MAX_TUNNELS,
            max_per_key: DEFAULT_MAX_TUNNELS_PER_KEY,
        }
    }
}

/// The certificate and private key files of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Who may report leaked keys, and what a report of a live key does. With
/// neither a public-keys file nor a secret, `POST /api/keys/leaked` is off (404).
#[derive(Debug, Clone, Default)]
pub struct LeakReportSettings {
    /// Public keys in GitHub's format (`--leak-report-keys`), read at start.
    pub public_keys_file: Option<PathBuf>,
    /// Shared secret of `X-Assetpool-Signature` (`--leak-report-secret`).
    pub secret: Option<secrecy::SecretString>,
    /// `--on-leak alert|revoke` (default `alert`).
    pub policy: assetpool_core::leaks::LeakPolicy,
}

/// Default base of the retry backoff of webhook deliveries.
pub const DEFAULT_WEBHOOK_RETRY_BASE: Duration = Duration::from_secs(10);
/// Default time between claims of due webhook deliveries.
pub const DEFAULT_WEBHOOK_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How alert webhooks are delivered ([`crate::webhooks`]).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Signs deliveries to operators' webhooks (`secret_ref` `global`).
    pub global_secret: Option<secrecy::SecretString>,
    /// Time between claims of due deliveries.
    pub poll_interval: Duration,
    /// First retry delay; each further failure doubles it.
    pub retry_base: Duration,
    /// Longest retry delay (before jitter).
    pub retry_cap: Duration,
    /// A failure this long after the alert was queued gives the delivery up.
    pub give_up_after: chrono::Duration,
    /// How long a claim keeps other servers off a delivery.
    pub lease: chrono::Duration,
    /// Longest time one POST may take.
    pub attempt_timeout: Duration,
    /// Deliveries claimed at once.
    pub batch_size: u32,
    /// POSTs in flight at once.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            global_secret: None,
            poll_interval: DEFAULT_WEBHOOK_POLL_INTERVAL,
            retry_base: DEFAULT_WEBHOOK_RETRY_BASE,
            retry_cap: Duration::from_secs(3600),
            give_up_after: chrono::Duration::hours(24),
            lease: chrono::Duration::seconds(60),
            attempt_timeout: Duration::from_secs(10),
            batch_size: 20,
            concurrency: 8,
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug)]
pub struct ServerSettings {
    /// Storage URL (`sqlite://...`).
    pub database_url: String,
    /// Address to listen on (port 0 picks a free one).
    pub listen: String,
    /// Serve `GET /metrics` on this address only (plain HTTP, port 0 picks a
    /// free one) instead of on `listen`.
    pub metrics_listen: Option<String>,
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
    /// Alert rules and operators' webhooks (`--alert-webhook`).
    pub alerts: assetpool_core::alerts::AlertSettings,
    /// Delivery of alert webhooks; its `global_secret` signs operators'
    /// webhooks (`--alert-webhook-secret`).
    pub webhooks: WebhookSettings,
    /// Whether usage per key is counted (`--usage-tracking`, on by default).
    pub usage_tracking: bool,
    /// Leaked-key reports (`POST /api/keys/leaked`): who may send them, and the policy.
    pub leak_reports: LeakReportSettings,
    /// Reverse-proxy mode: the upstream (`http://HOST:PORT`) that accepted
    /// requests outside assetpool's own routes are forwarded to.
    pub upstream: Option<axum::http::Uri>,
    /// How long the upstream has to send its response headers.
    pub upstream_timeout: Duration,
    /// Idle timeout and maximum lifetime of reverse-proxy WebSocket tunnels.
    pub tunnels: TunnelSettings,
    /// The scopes forwarded requests need, by method and path prefix (`--route-scope`).
    pub route_scopes: crate::gateway::route_scopes::RouteScopes,
    /// Login throttling limits (failures per account and address, per
    /// address, per account; delays; window).
    pub throttle: assetpool_core::throttle::ThrottleSettings,
    /// Connection limits and timeouts of the listener.
    pub listener: ListenerSettings,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Peers whose forwarding header names the client (reverse proxies);
    /// from any other peer, forwarding headers are ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// The forwarding header read from trusted proxies (`X-Forwarded-For`
    /// unless said otherwise); the other one is never read.
    pub forwarded_header: ForwardedHeader,
    /// PostgreSQL: the request pool's size and statement timeout (unused on SQLite).
    pub database_pool: assetpool_store_postgres::PoolSettings,
    /// Redis deciding rate limits and quotas for every server
    /// (`--limits-store redis://HOST:PORT[/DB]`, checked); `None`: each
    /// server decides alone.
    pub limits_store: Option<redis::Client>,
    /// Serve the web console at `/console/` (`--console`, default true).
    pub console: bool,
}

impl ServerSettings {
    /// Defaults for everything, on `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        ServerSettings {
            database_url: database_url.into(),
            listen: DEFAULT_LISTEN.to_owned(),
            metrics_listen: None,
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
            alerts: assetpool_core::alerts::AlertSettings::default(),
            webhooks: WebhookSettings::default(),
            usage_tracking: true,
            leak_reports: LeakReportSettings::default(),
            upstream: None,
            upstream_timeout: Duration::from_secs(DEFAULT_UPSTREAM_TIMEOUT),
            tunnels: TunnelSettings::default(),
            route_scopes: crate::gateway::route_scopes::RouteScopes::default(),
            throttle: assetpool_core::throttle::ThrottleSettings::default(),
            listener: ListenerSettings::default(),
            tls: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            database_pool: assetpool_store_postgres::PoolSettings::default(),
            limits_store: None,
            console: true,
        }
    }
}
