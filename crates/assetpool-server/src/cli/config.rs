//! The TOML config file: the same keys as the long options.

use anyhow::Context as _;
use assetpool_core::password::Argon2Settings;
use secrecy::SecretBox;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The config file's values that commands other than `serve` read (Argon2
/// parameters for the passwords `users` commands hash, where owner webhooks
/// may point). Every key of the file, these included, has already been
/// checked by its option's parser when the command line was read
/// ([`super::layers`]); `serve` takes all of them through its options.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileConfig {
    /// `--argon2-memory-kib`
    pub argon2_memory_kib: Option<u32>,
    /// `--argon2-iterations`
    pub argon2_iterations: Option<u32>,
    /// `--argon2-parallelism`
    pub argon2_parallelism: Option<u32>,
    /// `--allow-private-webhooks` (`allow-private-webhooks = true`)
    pub allow_private_webhooks: Option<bool>,
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
pub fn signing_key_kek(cli_file: Option<&Path>) -> anyhow::Result<Option<SecretBox<str>>> {
    if let Some(value) = kek_from_environment() {
        return Ok(Some(SecretBox::from(value)));
    }
    let Some(path) = configured_kek_file(cli_file) else {
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

pub fn configured_kek_file(cli_file: Option<&Path>) -> Option<PathBuf> {
    if kek_from_environment().is_some() {
        return None;
    }
    cli_file.map(Path::to_path_buf)
}

fn kek_from_environment() -> Option<String> {
    std::env::var("ASSETPOOL_SIGNING_KEY_KEK")
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}
