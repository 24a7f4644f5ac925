//! The TOML config file: the same keys as the long options.

use crate::telemetry::LogFormat;
use anyhow::Context as _;
use assetpool_core::password::Argon2Settings;
use assetpool_core::Environment;
use secrecy::SecretBox;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Contents of the config file. Unknown keys are an error (typos are caught).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// `--database`
    pub database: Option<String>,
    /// `--log-format`
    pub log_format: Option<LogFormat>,
    /// `--listen`
    pub listen: Option<String>,
    /// `--metrics-listen`
    pub metrics_listen: Option<String>,
    /// `--environment`
    pub environment: Option<String>,
    /// `--token-ttl`
    pub token_ttl: Option<u64>,
    /// `--refresh-ttl`
    pub refresh_ttl: Option<u64>,
    /// `--issuer`
    pub issuer: Option<String>,
    /// `--audience`
    pub audience: Option<String>,
    /// `--signing-key-kek-file`
    pub signing_key_kek_file: Option<PathBuf>,
    /// `--request-timeout`
    pub request_timeout: Option<u64>,
    /// `--max-staleness`
    pub max_staleness: Option<u64>,
    /// `--argon2-memory-kib`
    pub argon2_memory_kib: Option<u32>,
    /// `--argon2-iterations`
    pub argon2_iterations: Option<u32>,
    /// `--argon2-parallelism`
    pub argon2_parallelism: Option<u32>,
    /// `--hashing-workers`
    pub hashing_workers: Option<usize>,
    /// `--hashing-queue`
    pub hashing_queue: Option<usize>,
    /// `--upstream`
    pub upstream: Option<String>,
    /// `--upstream-timeout`
    pub upstream_timeout: Option<u64>,
    /// `--route-scope` (a list: `route-scope = ["GET /orders=orders:read"]`; `route-scopes` too)
    #[serde(default, alias = "route-scopes")]
    pub route_scope: Vec<String>,
    /// `--tunnel-idle-timeout`
    pub tunnel_idle_timeout: Option<u64>,
    /// `--tunnel-max-lifetime`
    pub tunnel_max_lifetime: Option<u64>,
    /// `--max-tunnels`
    pub max_tunnels: Option<u64>,
    /// `--max-tunnels-per-key`
    pub max_tunnels_per_key: Option<u64>,
    /// `--max-connections`
    pub max_connections: Option<u64>,
    /// `--header-read-timeout`
    pub header_read_timeout: Option<u64>,
    /// `--keep-alive-timeout`
    pub keep_alive_timeout: Option<u64>,
    /// `--max-header-size`
    pub max_header_size: Option<u64>,
    /// `--max-headers`
    pub max_headers: Option<u64>,
    /// `--database-pool-size`
    pub database_pool_size: Option<u64>,
    /// `--database-statement-timeout`
    pub database_statement_timeout: Option<u64>,
    /// `--shutdown-delay`
    pub shutdown_delay: Option<u64>,
    /// `--shutdown-timeout`
    pub shutdown_timeout: Option<u64>,
    /// `login-failures-per-pair`.
    pub login_failures_per_pair: Option<u64>,
    /// `login-failures-per-address`.
    pub login_failures_per_address: Option<u64>,
    /// `login-failures-per-account`.
    pub login_failures_per_account: Option<u64>,
    /// `--login-throttle-ipv6-prefix`
    pub login_throttle_ipv6_prefix: Option<u64>,
    /// `--tls-cert`
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`
    pub tls_key: Option<PathBuf>,
    /// `--trusted-proxy` (a list: `trusted-proxy = ["10.0.0.0/8"]`)
    #[serde(default)]
    pub trusted_proxy: Vec<String>,
    /// `--forwarded-header`
    pub forwarded_header: Option<String>,
    /// `--alert-webhook` (a list: `alert-webhook = ["https://..."]`; `alert-webhooks` too)
    #[serde(default, alias = "alert-webhooks")]
    pub alert_webhook: Vec<String>,
    /// `--alert-webhook-secret`
    #[serde(default, deserialize_with = "optional_secret")]
    pub alert_webhook_secret: Option<secrecy::SecretString>,
    /// `--allow-private-webhooks` (`allow-private-webhooks = true`)
    pub allow_private_webhooks: Option<bool>,
    /// `--leak-report-keys`
    pub leak_report_keys: Option<PathBuf>,
    /// `--leak-report-secret`
    #[serde(default, deserialize_with = "optional_secret")]
    pub leak_report_secret: Option<secrecy::SecretString>,
    /// `--on-leak`
    pub on_leak: Option<String>,
    /// `--usage-tracking`
    pub usage_tracking: Option<bool>,
    /// `--alert-disable` (a list of rule names)
    #[serde(default)]
    pub alert_disable: Vec<String>,
    /// `--alert-failed-logins`
    pub alert_failed_logins: Option<u64>,
    /// `--alert-rate-factor`
    pub alert_rate_factor: Option<u64>,
    /// `--alert-rate-min`
    pub alert_rate_min: Option<u64>,
    /// `--limits-store` (may hold a password: kept out of `Debug`)
    #[serde(default, deserialize_with = "optional_secret")]
    pub limits_store: Option<secrecy::SecretString>,
    /// `--console`
    pub console: Option<bool>,
}

/// A secret string of the file, kept out of `Debug`.
fn optional_secret<'de, D>(deserializer: D) -> Result<Option<secrecy::SecretString>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.map(secrecy::SecretString::from))
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "invalid config file {}: {}",
                path.display(),
                error.message()
            )
        })
    }

    /// The environment named in the file, if any.
    pub fn environment(&self) -> anyhow::Result<Option<Environment>> {
        self.environment
            .as_deref()
            .map(Environment::parse)
            .transpose()
            .context("invalid environment in the config file")
    }

    /// Argon2 parameters from the file (defaults otherwise), checked against the minimum.
    pub fn argon2_settings(&self) -> anyhow::Result<Argon2Settings> {
        argon2_settings(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
        )
    }
}

/// Argon2 parameters, refusing any below OWASP's minimum (m=19456 KiB, t=2, p=1).
pub fn argon2_settings(
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
) -> anyhow::Result<Argon2Settings> {
    let minimum = Argon2Settings::default();
    let settings = Argon2Settings {
        memory_kib: memory_kib.unwrap_or(minimum.memory_kib),
        iterations: iterations.unwrap_or(minimum.iterations),
        parallelism: parallelism.unwrap_or(minimum.parallelism),
    };
    if settings.memory_kib < minimum.memory_kib
        || settings.iterations < minimum.iterations
        || settings.parallelism < 1
    {
        anyhow::bail!("Argon2 parameters below the minimum of m=19456 KiB, t=2, p=1");
    }
    Ok(settings)
}

/// The key-encryption key of signing keys: `ASSETPOOL_SIGNING_KEY_KEK`, or
/// the file named by the flag, the environment or the config file
/// ([`configured_kek_file`]). `None` when none is configured (see
/// [`crate::key_encryption`] for what happens then).
pub fn signing_key_kek(
    cli_file: Option<&Path>,
    file: &FileConfig,
) -> anyhow::Result<Option<SecretBox<str>>> {
    if let Some(value) = kek_from_environment() {
        return Ok(Some(SecretBox::from(value)));
    }
    let Some(path) = configured_kek_file(cli_file, file) else {
        return Ok(None);
    };
    crate::key_encryption::read_key_file(&path)
        .map(Some)
        .with_context(|| format!("cannot read the key-encryption key file {}", path.display()))
}

/// The file the configured key-encryption key is read from: `None` when it
/// is given in `ASSETPOOL_SIGNING_KEY_KEK` or not configured at all.
/// Where owner webhooks may point, for `serve` and the admin commands:
/// anywhere when `--allow-private-webhooks` (`flag`), a true
/// `ASSETPOOL_ALLOW_PRIVATE_WEBHOOKS` or `allow-private-webhooks = true`
/// says so, else public addresses only.
pub fn webhook_targets(
    flag: bool,
    file: &FileConfig,
) -> assetpool_core::webhook_target::WebhookTargets {
    use assetpool_core::webhook_target::WebhookTargets;
    let environment = std::env::var("ASSETPOOL_ALLOW_PRIVATE_WEBHOOKS")
        .ok()
        .map(|value| {
            !matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "off" | "n" | "f"
            )
        });
    if flag || environment.or(file.allow_private_webhooks).unwrap_or(false) {
        WebhookTargets::Any
    } else {
        WebhookTargets::PublicOnly
    }
}

pub fn configured_kek_file(cli_file: Option<&Path>, file: &FileConfig) -> Option<PathBuf> {
    if kek_from_environment().is_some() {
        return None;
    }
    cli_file
        .or(file.signing_key_kek_file.as_deref())
        .map(Path::to_path_buf)
}

fn kek_from_environment() -> Option<String> {
    std::env::var("ASSETPOOL_SIGNING_KEY_KEK")
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}
