//! `assetpool serve`, and the `--demo` seed.

use super::config::{argon2_settings, FileConfig};
use super::durations::Seconds;
use super::output::say;
use super::secret_args;
use super::Context;
use crate::extract::client_address::ForwardedHeader;
use crate::gateway::route_scopes::RouteScopes;
use crate::settings::{
    ListenerSettings, ServerSettings, TlsFiles, DEFAULT_AUDIENCE, DEFAULT_LISTEN,
    DEFAULT_REFRESH_TTL, DEFAULT_TOKEN_TTL, MAX_MAX_HEADER_SIZE, MIN_MAX_HEADER_SIZE,
};
use crate::Application;
use anyhow::Context as _;
use assetpool_core::admin::{Admin, CreateApiKey};
use assetpool_core::api_key::random_token;
use assetpool_core::hashing::HashingPoolSettings;
use assetpool_core::store::CreationPage;
use assetpool_core::Environment;
use assetpool_store_postgres::PoolSettings;
use clap::Args;
use ipnet::IpNet;
use secrecy::ExposeSecret;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

const DEMO_USER: &str = "demo@example.com";

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "ASSETPOOL_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Serve GET /metrics on this address only (plain HTTP; port 0 picks a
    /// free port) instead of on --listen.
    #[arg(long, env = "ASSETPOOL_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// The server's environment: development, staging, production (or dev, stg, prod).
    #[arg(long, env = "ASSETPOOL_ENVIRONMENT", value_parser = Environment::parse)]
    environment: Option<Environment>,
    /// Access token lifetime in seconds.
    #[arg(long, env = "ASSETPOOL_TOKEN_TTL", value_name = "SECONDS",
          value_parser = Seconds::within(1..=31_536_000))]
    token_ttl: Option<u64>,
    /// Refresh token lifetime in seconds.
    #[arg(long, env = "ASSETPOOL_REFRESH_TTL", value_name = "SECONDS",
          value_parser = Seconds::within(1..=315_360_000))]
    refresh_ttl: Option<u64>,
    /// Issuer URL written into tokens (default: the one recorded in the database at first start).
    #[arg(long, env = "ASSETPOOL_ISSUER", value_name = "URL")]
    issuer: Option<String>,
    /// Audience written into and required of tokens.
    #[arg(long, env = "ASSETPOOL_AUDIENCE")]
    audience: Option<String>,
    /// Longest time a request may take, in seconds.
    #[arg(long, env = "ASSETPOOL_REQUEST_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(1..=3600))]
    request_timeout: Option<u64>,
    /// Seconds protected requests are still checked from memory while storage
    /// is unreachable; beyond, they fail closed with 503 storage_unavailable.
    #[arg(long, env = "ASSETPOOL_MAX_STALENESS", value_name = "SECONDS",
          value_parser = Seconds::within(1..=86_400))]
    max_staleness: Option<u64>,
    /// PostgreSQL: connections of the pool at most (default 16; the
    /// notification listener holds one of them, the change feed one more of its own).
    #[arg(long, env = "ASSETPOOL_DATABASE_POOL_SIZE", value_name = "N",
          value_parser = clap::value_parser!(u64).range(DATABASE_POOL_SIZE))]
    database_pool_size: Option<u64>,
    /// PostgreSQL: seconds a statement may run before it is cancelled (0,
    /// the default: no limit). Migrations are not limited.
    #[arg(long, env = "ASSETPOOL_DATABASE_STATEMENT_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(DATABASE_STATEMENT_TIMEOUT))]
    database_statement_timeout: Option<u64>,
    /// Argon2id memory in KiB for new password hashes (at least 19456).
    #[arg(long, env = "ASSETPOOL_ARGON2_MEMORY_KIB")]
    argon2_memory_kib: Option<u32>,
    /// Argon2id iterations (at least 2).
    #[arg(long, env = "ASSETPOOL_ARGON2_ITERATIONS")]
    argon2_iterations: Option<u32>,
    /// Argon2id lanes (at least 1).
    #[arg(long, env = "ASSETPOOL_ARGON2_PARALLELISM")]
    argon2_parallelism: Option<u32>,
    /// Password hashes computed at once (default: the number of cores).
    #[arg(long, env = "ASSETPOOL_HASHING_WORKERS",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    hashing_workers: Option<u64>,
    /// Password hashes allowed to wait; beyond, login answers 503 overloaded.
    #[arg(long, env = "ASSETPOOL_HASHING_QUEUE",
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    hashing_queue: Option<u64>,
    /// Reverse-proxy mode: forward accepted requests outside assetpool's own
    /// routes to this upstream (http://HOST:PORT).
    #[arg(long, env = "ASSETPOOL_UPSTREAM", value_name = "URL")]
    upstream: Option<String>,
    /// Seconds the upstream has to send its response headers (then 504 upstream_timeout).
    #[arg(long, env = "ASSETPOOL_UPSTREAM_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(1..=86_400))]
    upstream_timeout: Option<u64>,
    /// Scopes forwarded requests need: 'METHOD /path/prefix=scope1 scope2'
    /// (repeatable, environment: comma-separated; METHOD may be *; the
    /// longest matching prefix decides, a method beats * at equal length; a
    /// path no rule matches needs no scope). Needs --upstream.
    #[arg(
        long = "route-scope",
        env = "ASSETPOOL_ROUTE_SCOPES",
        value_name = "RULE",
        value_delimiter = ','
    )]
    route_scopes: Vec<String>,
    /// Limits of reverse-proxy WebSocket tunnels.
    #[command(flatten)]
    tunnels: Box<super::tunnel_args::TunnelArgs>,
    /// Listener limits, HTTPS and trusted proxies.
    #[command(flatten)]
    listener: Box<ListenerArgs>,
    /// Operators' alert webhooks.
    #[command(flatten)]
    webhooks: Box<AlertWebhookArgs>,
    /// Usage tracking and alert rules.
    #[command(flatten)]
    monitoring: Box<super::monitoring_args::MonitoringArgs>,
    /// Leaked-key reports (`POST /api/keys/leaked`).
    #[command(flatten)]
    leaks: Box<super::leaks::LeakReportArgs>,
    /// On an empty database, create a demo API key and user and print ready-to-paste curl lines.
    #[arg(long, help_heading = "Options")]
    demo: bool,
    /// Decide rate limits and quotas with every other server through this
    /// Redis (redis://HOST:PORT[/DB]); without it each server decides alone.
    #[arg(long, env = "ASSETPOOL_LIMITS_STORE", value_name = "URL", help_heading = "Options",
          hide_env_values = true, value_parser = parse_secret)]
    limits_store: Option<secrecy::SecretString>,
    /// Serve the web console at /console/: true or false (default true;
    /// false with --upstream, where it would share the upstream's origin).
    #[arg(
        long,
        env = "ASSETPOOL_CONSOLE",
        value_name = "BOOL",
        help_heading = "Options"
    )]
    console: Option<bool>,
    /// Export request spans over OpenTelemetry's OTLP/HTTP (protobuf) to
    /// this collector, e.g. http://127.0.0.1:4318 (spans go to its
    /// /v1/traces). Each span carries the request id, route, status and
    /// latency. Needs a build with the `otlp` feature (the default).
    #[arg(long, env = "ASSETPOOL_OTLP_ENDPOINT", value_name = "URL", help_heading = "Options",
          value_parser = crate::telemetry::parse_otlp_endpoint)]
    otlp_endpoint: Option<String>,
}

impl ServeArgs {
    /// `--otlp-endpoint`.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref()
    }
}

/// The listener's arguments of `serve` (boxed: they make the arguments large).
#[derive(Debug, Args)]
#[command(next_help_heading = "Listener, HTTPS, client addresses and login throttle")]
struct ListenerArgs {
    /// Open client connections at most; further clients wait until one closes.
    #[arg(long, env = "ASSETPOOL_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(MAX_CONNECTIONS))]
    max_connections: Option<u64>,
    /// Seconds a client has to send a complete request head (TLS handshake
    /// included); slower connections are closed.
    #[arg(long, env = "ASSETPOOL_HEADER_READ_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(HEADER_READ_TIMEOUT))]
    header_read_timeout: Option<u64>,
    /// Seconds an idle keep-alive connection stays open between requests (0: no keep-alive).
    #[arg(long, env = "ASSETPOOL_KEEP_ALIVE_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(KEEP_ALIVE_TIMEOUT))]
    keep_alive_timeout: Option<u64>,
    /// Largest request head (request line and headers) in bytes; beyond, 431.
    #[arg(long, env = "ASSETPOOL_MAX_HEADER_SIZE", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(MAX_HEADER_SIZE))]
    max_header_size: Option<u64>,
    /// Largest number of request headers; beyond, 431.
    #[arg(long, env = "ASSETPOOL_MAX_HEADERS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(MAX_HEADERS))]
    max_headers: Option<u64>,
    /// Seconds between SIGTERM and closing the listening socket, during which
    /// /readyz answers 503 and requests are still served (default 0; set it to
    /// your load balancer's health-check interval).
    #[arg(long, env = "ASSETPOOL_SHUTDOWN_DELAY", value_name = "SECONDS",
          value_parser = Seconds::within(SHUTDOWN_DELAY))]
    shutdown_delay: Option<u64>,
    /// Seconds open connections have to finish once the listening socket is
    /// closed; the rest are then closed (default 20).
    #[arg(long, env = "ASSETPOOL_SHUTDOWN_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(SHUTDOWN_TIMEOUT))]
    shutdown_timeout: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "ASSETPOOL_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "ASSETPOOL_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// A reverse proxy (CIDR or address) whose X-Forwarded-For / Forwarded
    /// headers name the client; repeatable (environment: comma-separated).
    #[arg(long = "trusted-proxy", env = "ASSETPOOL_TRUSTED_PROXIES", value_name = "CIDR",
          value_delimiter = ',', value_parser = parse_cidr)]
    trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies name the client in: x-forwarded-for
    /// (default) or forwarded (RFC 7239). The other one is never read.
    #[arg(long, env = "ASSETPOOL_FORWARDED_HEADER", value_name = "x-forwarded-for|forwarded",
          value_parser = ForwardedHeader::parse)]
    forwarded_header: Option<ForwardedHeader>,
    /// Failed logins of one account from one address before that address is
    /// delayed for that account (default 5).
    #[arg(long, env = "ASSETPOOL_LOGIN_FAILURES_PER_PAIR", value_name = "N",
          value_parser = clap::value_parser!(u64).range(LOGIN_FAILURES))]
    login_failures_per_pair: Option<u64>,
    /// Failed logins from one address, all accounts, before it is delayed (default 50).
    #[arg(long, env = "ASSETPOOL_LOGIN_FAILURES_PER_ADDRESS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(LOGIN_FAILURES))]
    login_failures_per_address: Option<u64>,
    /// Failed logins of one account, all addresses, before unknown addresses
    /// are delayed (default 50; at most 100, as NIST SP 800-63B asks).
    #[arg(long, env = "ASSETPOOL_LOGIN_FAILURES_PER_ACCOUNT", value_name = "N",
          value_parser = clap::value_parser!(u64).range(LOGIN_FAILURES_PER_ACCOUNT))]
    login_failures_per_account: Option<u64>,
    /// IPv6 clients are throttled (and remembered) by their network of this
    /// many leading bits (default 64: one host usually holds a whole /64; 128
    /// counts single addresses).
    #[arg(long, env = "ASSETPOOL_LOGIN_THROTTLE_IPV6_PREFIX", value_name = "BITS",
          value_parser = clap::value_parser!(u64).range(IPV6_PREFIX))]
    login_throttle_ipv6_prefix: Option<u64>,
}

/// The operators' alert webhooks of `serve` (docs/webhooks.md).
#[derive(Debug, Args)]
#[command(next_help_heading = "Alert webhooks")]
struct AlertWebhookArgs {
    /// POST every new alert to this URL, signed with --alert-webhook-secret;
    /// repeatable (environment: comma-separated).
    #[arg(
        long = "alert-webhook",
        env = "ASSETPOOL_ALERT_WEBHOOKS",
        value_name = "URL",
        value_delimiter = ','
    )]
    alert_webhooks: Vec<String>,
    /// Secret that signs alert webhook deliveries (HMAC-SHA256; at least 16
    /// characters). Prefer ASSETPOOL_ALERT_WEBHOOK_SECRET_FILE (a file holding
    /// it) or `-` (the first line of standard input; with --leak-report-secret -
    /// too, this one comes first): on the command line, other users can read it.
    #[arg(long, env = "ASSETPOOL_ALERT_WEBHOOK_SECRET", value_name = "SECRET",
          hide_env_values = true, value_parser = parse_secret)]
    alert_webhook_secret: Option<secrecy::SecretString>,
    /// Let owner webhooks (admin API, keys update --webhook) point at
    /// private, loopback and link-local addresses, which are refused by
    /// default (when set and at every delivery).
    #[arg(long, env = "ASSETPOOL_ALLOW_PRIVATE_WEBHOOKS")]
    allow_private_webhooks: bool,
}

/// Shortest accepted `--alert-webhook-secret`.
const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

/// A secret argument, kept out of `Debug`.
pub(super) fn parse_secret(text: &str) -> Result<secrecy::SecretString, String> {
    Ok(secrecy::SecretString::from(text.trim()))
}

/// The operators' webhooks and their secret (flag, environment, `_FILE` or
/// config file, as the command line merged them). A webhook without a
/// secret is refused.
fn apply_webhook_args(
    settings: &mut ServerSettings,
    args: &AlertWebhookArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    settings.alerts.webhooks = args
        .alert_webhooks
        .iter()
        .filter(|url| !url.trim().is_empty())
        .map(|url| {
            assetpool_core::admin::validate_webhook_url(url).map_err(|_| {
                anyhow::anyhow!(
                    "invalid --alert-webhook: expected an absolute http:// or https:// URL"
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let secret = secret_args::resolve(
        &secret_args::ALERT_WEBHOOK_SECRET,
        args.alert_webhook_secret.as_ref(),
    )?;
    if let Some(secret) = &secret {
        if secret.expose_secret().chars().count() < MIN_WEBHOOK_SECRET_CHARS {
            anyhow::bail!(
                "--alert-webhook-secret must be at least {MIN_WEBHOOK_SECRET_CHARS} characters"
            );
        }
    }
    if !settings.alerts.webhooks.is_empty() && secret.is_none() {
        anyhow::bail!(
            "--alert-webhook needs --alert-webhook-secret \
             (or ASSETPOOL_ALERT_WEBHOOK_SECRET_FILE, ASSETPOOL_ALERT_WEBHOOK_SECRET) to sign deliveries"
        );
    }
    settings.webhooks.global_secret = secret;
    settings.alerts.owner_webhook_targets =
        super::config::webhook_targets(args.allow_private_webhooks, file);
    Ok(())
}

const LOGIN_FAILURES: RangeInclusive<u64> = 1..=100_000;
const LOGIN_FAILURES_PER_ACCOUNT: RangeInclusive<u64> = 1..=100;
const IPV6_PREFIX: RangeInclusive<u64> = 16..=128;

pub(super) const MAX_CONNECTIONS: RangeInclusive<u64> = 1..=1_000_000;
const HEADER_READ_TIMEOUT: RangeInclusive<u64> = 1..=3600;
const KEEP_ALIVE_TIMEOUT: RangeInclusive<u64> = 0..=86_400;
const MAX_HEADER_SIZE: RangeInclusive<u64> =
    MIN_MAX_HEADER_SIZE as u64..=MAX_MAX_HEADER_SIZE as u64;
const MAX_HEADERS: RangeInclusive<u64> = 1..=10_000;
const SHUTDOWN_DELAY: RangeInclusive<u64> = 0..=3_600;
const DATABASE_POOL_SIZE: RangeInclusive<u64> = 1..=1_000;
const DATABASE_STATEMENT_TIMEOUT: RangeInclusive<u64> = 0..=86_400;
const SHUTDOWN_TIMEOUT: RangeInclusive<u64> = 1..=3_600;

/// A network (`10.0.0.0/8`, `fd00::/8`) or one address (`10.0.0.5`).
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("invalid network {text:?} (expected CIDR such as 10.0.0.0/8, or an address)")
        })
}

/// The PostgreSQL pool settings.
fn database_pool(args: &ServeArgs) -> PoolSettings {
    let defaults = PoolSettings::default();
    PoolSettings {
        max_connections: args
            .database_pool_size
            .map_or(defaults.max_connections, |size| {
                u32::try_from(size).unwrap_or(u32::MAX)
            }),
        statement_timeout: args
            .database_statement_timeout
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs),
    }
}

fn listener_settings(args: &ListenerArgs) -> ListenerSettings {
    let defaults = ListenerSettings::default();
    let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
    ListenerSettings {
        max_connections: args.max_connections.map_or(defaults.max_connections, size),
        header_read_timeout: args
            .header_read_timeout
            .map_or(defaults.header_read_timeout, Duration::from_secs),
        keep_alive_timeout: args
            .keep_alive_timeout
            .map_or(defaults.keep_alive_timeout, Duration::from_secs),
        max_header_size: args.max_header_size.map_or(defaults.max_header_size, size),
        max_headers: args.max_headers.map_or(defaults.max_headers, size),
        shutdown_delay: args
            .shutdown_delay
            .map_or(defaults.shutdown_delay, Duration::from_secs),
        shutdown_timeout: args
            .shutdown_timeout
            .map_or(defaults.shutdown_timeout, Duration::from_secs),
    }
}

/// The settings `serve` runs with, from its arguments as the command line
/// merged them (flag > environment > `_FILE` > config file > default, each
/// value checked by its option's parser: [`super::layers`]), checked as a
/// whole.
pub(super) fn settings(context: &Context, args: &ServeArgs) -> anyhow::Result<ServerSettings> {
    let mut settings = ServerSettings::new(context.database_url.clone());
    settings.listen = args
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    settings.metrics_listen = args.metrics_listen.clone();
    settings.environment = args.environment.unwrap_or(Environment::Production);
    settings.token_ttl = Duration::from_secs(args.token_ttl.unwrap_or(DEFAULT_TOKEN_TTL));
    settings.refresh_ttl = Duration::from_secs(args.refresh_ttl.unwrap_or(DEFAULT_REFRESH_TTL));
    settings.issuer = args.issuer.clone();
    settings.audience = args
        .audience
        .clone()
        .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    settings.database_pool = database_pool(args);
    if let Some(seconds) = args.request_timeout {
        settings.request_timeout = Duration::from_secs(seconds);
    }
    if let Some(seconds) = args.max_staleness {
        settings.max_staleness = Duration::from_secs(seconds);
    }
    settings.argon2 = argon2_settings(
        args.argon2_memory_kib,
        args.argon2_iterations,
        args.argon2_parallelism,
    )?;
    let defaults = HashingPoolSettings::default();
    let count = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
    settings.hashing = HashingPoolSettings {
        workers: args.hashing_workers.map_or(defaults.workers, count),
        queue: args.hashing_queue.map_or(defaults.queue, count),
    };
    apply_upstream_args(&mut settings, args)?;
    apply_listener_args(&mut settings, &args.listener)?;
    settings.tunnels = args.tunnels.settings(settings.listener.max_connections)?;
    apply_webhook_args(&mut settings, &args.webhooks, &context.file)?;
    args.monitoring.apply(&mut settings);
    settings.leak_reports = args.leaks.settings()?;
    settings.signing_key_kek = context.signing_key_kek()?;
    settings.limits_store = args
        .limits_store
        .as_ref()
        .map(|url| crate::limits_store::parse_url(url.expose_secret()))
        .transpose()?;
    // In reverse-proxy mode the console would share its origin with the
    // upstream application (whose scripts could then drive it): off unless asked.
    settings.console = args.console.unwrap_or_else(|| settings.upstream.is_none());
    Ok(settings)
}

/// The upstream of reverse-proxy mode, its timeout and the scopes its
/// routes need.
fn apply_upstream_args(settings: &mut ServerSettings, args: &ServeArgs) -> anyhow::Result<()> {
    settings.upstream = args
        .upstream
        .as_deref()
        .map(|url| {
            url.parse::<axum::http::Uri>()
                .map_err(|_| anyhow::anyhow!("invalid upstream URL (expected http://HOST:PORT)"))
        })
        .transpose()?;
    if let Some(seconds) = args.upstream_timeout {
        settings.upstream_timeout = Duration::from_secs(seconds);
    }
    settings.route_scopes = RouteScopes::parse(&args.route_scopes).map_err(anyhow::Error::msg)?;
    if settings.upstream.is_none() && !settings.route_scopes.is_empty() {
        anyhow::bail!("--route-scope applies to forwarded requests: it needs --upstream");
    }
    Ok(())
}

/// The listener settings, login throttle, HTTPS files and trusted proxies.
fn apply_listener_args(settings: &mut ServerSettings, args: &ListenerArgs) -> anyhow::Result<()> {
    settings.listener = listener_settings(args);
    let throttle = &mut settings.throttle;
    let count = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
    if let Some(value) = args.login_failures_per_pair {
        throttle.per_pair = count(value);
    }
    if let Some(value) = args.login_failures_per_address {
        throttle.per_address = count(value);
    }
    if let Some(value) = args.login_failures_per_account {
        throttle.per_account = count(value);
    }
    if let Some(bits) = args.login_throttle_ipv6_prefix {
        throttle.ipv6_prefix = u8::try_from(bits).unwrap_or(128);
    }
    settings.tls = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    settings.trusted_proxies = args.trusted_proxies.clone();
    settings.forwarded_header = args.forwarded_header.unwrap_or_default();
    Ok(())
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<()> {
    // First: a SIGHUP while the server starts (a certificate renewal hook)
    // must not end it.
    #[cfg(unix)]
    let hangups = crate::reload::Hangups::catch()?;
    let settings = settings(context, &args)?;
    let environment = settings.environment;
    if let Some(upstream) = &settings.upstream {
        tracing::info!(%upstream, "reverse-proxy mode: accepted requests go to the upstream");
    }
    let application = Application::build(settings).await?;
    #[cfg(unix)]
    application.reloader().reload_on(hangups);
    let address = application.local_addr();
    let url = application.url();
    if args.demo {
        let admin = context.admin().await?;
        seed_demo(&admin, environment, &url).await?;
    }
    say!("listening on {url}");
    if let Some(metrics) = application.metrics_addr() {
        say!("metrics on http://{metrics}");
    }
    tracing::info!(%address, environment = %environment, "server ready");
    application.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("server stopped");
    Ok(())
}

async fn seed_demo(admin: &Admin, environment: Environment, base_url: &str) -> anyhow::Result<()> {
    let first = CreationPage {
        after: None,
        limit: 1,
    };
    let empty = admin.list_api_keys(None, &first).await?.is_empty()
        && admin.list_users(&first).await?.is_empty();
    if !empty {
        say!("--demo: the database already has keys or users; nothing was created.");
        say!("        (secrets are never shown twice: start with an empty database to get a fresh demo.)");
        return Ok(());
    }
    let issued = admin
        .create_api_key(CreateApiKey::new("demo", environment))
        .await?;
    let password = random_token("", 20);
    admin
        .create_user(DEMO_USER, password.clone(), false)
        .await
        .context("cannot create the demo user")?;
    let key = issued.secret.expose();
    let password = password.expose_secret();
    say!("Demo data created ({environment}):");
    say!("  API key:   {key}");
    say!("  username:  {DEMO_USER}");
    say!("  password:  {password}");
    say!();
    say!("Log in (the answer's accessToken is your bearer token):");
    say!();
    say!("curl -X POST \"{base_url}/api/authentication/login\" \\");
    say!("     -H \"Content-Type: application/json\" \\");
    say!("     -H \"x-api-key: {key}\" \\");
    say!("     -d '{{\"username\": \"{DEMO_USER}\", \"password\": \"{password}\"}}'");
    say!();
    say!("Call the protected resource with the key and the token:");
    say!();
    say!("TOKEN=$(curl -s -X POST \"{base_url}/api/authentication/login\" -H \"Content-Type: application/json\" -H \"x-api-key: {key}\" -d '{{\"username\": \"{DEMO_USER}\", \"password\": \"{password}\"}}' | sed -E 's/.*\"accessToken\":\"([^\"]+)\".*/\\1/')");
    say!();
    say!("curl -X GET {base_url}/v1/resource \\");
    say!("     -H \"x-api-key: {key}\" \\");
    say!("     -H \"x-api-token: $TOKEN\"");
    say!();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
