//! The lifecycle options of `assetpool keys create|update` (`--metadata`,
//! `--owner`, `--allow-cidr`, and on update `--expires-in` and
//! `--allow-cidrs none`), parsed at the edge into core's types, and `keys
//! disable|enable`.

use super::keys::{print_key, Setting};
use super::output::{print_json, say};
use assetpool_core::admin::Admin;
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::ids::KeyId;
use assetpool_core::key_metadata::KeyMetadata;
use assetpool_core::store::ApiKeyUpdate;
use chrono::Duration;

/// Longest key lifetime accepted (100 years, as `keys create`).
const MAX_EXPIRES_IN_SECONDS: i64 = 3_153_600_000;

/// `--metadata`, `--owner` and `--allow-cidr` of `keys create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyProfileArgs {
    /// Notes on the key: a JSON object of at most 4 KiB (e.g. '{"team":"billing"}').
    #[arg(long, value_name = "JSON", value_parser = parse_metadata)]
    metadata: Option<KeyMetadata>,
    /// The email address of the key's owner.
    #[arg(long, value_name = "EMAIL")]
    owner: Option<String>,
    /// A client network the key may be used from (repeatable; IPv4 or IPv6
    /// CIDR, a bare address is one host). Default: any address.
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    allow_cidr: Vec<String>,
}

impl KeyProfileArgs {
    /// (metadata, owner, allow-list) for a new key.
    pub fn into_parts(
        self,
    ) -> anyhow::Result<(Option<KeyMetadata>, Option<String>, Option<AllowedNetworks>)> {
        Ok((
            self.metadata,
            self.owner,
            allowed_networks(&self.allow_cidr)?,
        ))
    }
}

/// The lifecycle options of `keys update`; each one given changes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyProfileUpdateArgs {
    /// New lifetime from now: seconds (or 90s, 15m, 24h, 7d), or `none` for no expiry.
    #[arg(long, value_name = "SECONDS|none", value_parser = parse_expires_in)]
    expires_in: Option<Setting<Duration>>,
    /// New notes (a JSON object of at most 4 KiB, replacing the old), or `none`.
    #[arg(long, value_name = "JSON|none", value_parser = parse_metadata_setting)]
    metadata: Option<Setting<KeyMetadata>>,
    /// New owner (an email address), or `none`.
    #[arg(long, value_name = "EMAIL|none", value_parser = parse_owner)]
    owner: Option<Setting<String>>,
    /// A client network the key may be used from (repeatable); the networks
    /// given replace the allow-list.
    #[arg(
        long = "allow-cidr",
        value_name = "CIDR",
        conflicts_with = "allow_cidrs"
    )]
    allow_cidr: Vec<String>,
    /// `none`: remove the allow-list (any address may use the key).
    #[arg(long = "allow-cidrs", value_name = "none", value_parser = ["none"])]
    allow_cidrs: Option<String>,
}

impl KeyProfileUpdateArgs {
    /// Whether no option was given.
    pub fn is_empty(&self) -> bool {
        self.expires_in.is_none()
            && self.metadata.is_none()
            && self.owner.is_none()
            && self.allow_cidr.is_empty()
            && self.allow_cidrs.is_none()
    }

    /// Adds the options to `update`; a lifetime counts from `admin`'s now.
    pub fn apply(self, admin: &Admin, update: &mut ApiKeyUpdate) -> anyhow::Result<()> {
        update.expires_at = self.expires_in.map(|setting| match setting {
            Setting::Set(lifetime) => Some(admin.now() + lifetime),
            Setting::Remove => None,
        });
        update.metadata = self.metadata.map(Setting::into_option);
        update.owner = self.owner.map(Setting::into_option);
        update.allowed_networks = if self.allow_cidrs.is_some() {
            Some(None)
        } else {
            allowed_networks(&self.allow_cidr)?.map(Some)
        };
        Ok(())
    }
}

/// The allow-list of repeated `--allow-cidr` options (`None` when none was given).
fn allowed_networks(texts: &[String]) -> anyhow::Result<Option<AllowedNetworks>> {
    if texts.is_empty() {
        return Ok(None);
    }
    AllowedNetworks::parse(texts)
        .map(Some)
        .map_err(|error| anyhow::anyhow!("--allow-cidr: {error}"))
}

fn is_none(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("none")
}

fn parse_metadata(text: &str) -> Result<KeyMetadata, String> {
    KeyMetadata::parse(text).map_err(|error| error.to_string())
}

fn parse_metadata_setting(text: &str) -> Result<Setting<KeyMetadata>, String> {
    if is_none(text) {
        return Ok(Setting::Remove);
    }
    parse_metadata(text).map(Setting::Set)
}

fn parse_owner(text: &str) -> Result<Setting<String>, String> {
    if is_none(text) {
        return Ok(Setting::Remove);
    }
    Ok(Setting::Set(text.to_owned()))
}

/// Seconds from 1 to 100 years (as `keys create --expires-in`), a period
/// (`90s`, `24h`, `7d`), or `none`.
fn parse_expires_in(text: &str) -> Result<Setting<Duration>, String> {
    if is_none(text) {
        return Ok(Setting::Remove);
    }
    let seconds = assetpool_core::period::parse_seconds(text)
        .ok()
        .and_then(|seconds| i64::try_from(seconds).ok())
        .unwrap_or(0);
    if !(1..=MAX_EXPIRES_IN_SECONDS).contains(&seconds) {
        return Err("the lifetime must be 1 to 3153600000 seconds (a bare number is seconds; 90s, 15m, 24h, 7d also work) or none".to_owned());
    }
    Ok(Setting::Set(Duration::seconds(seconds)))
}

/// `keys disable ID` and `keys enable ID`.
pub async fn set_disabled(
    admin: &Admin,
    id: &KeyId,
    disabled: bool,
    json: bool,
) -> anyhow::Result<()> {
    let key = admin.set_api_key_disabled(id, disabled).await?;
    if json {
        return print_json(&key);
    }
    if disabled {
        say!(
            "Disabled API key {} ({}): it and its sessions' tokens are refused until `keys enable`.",
            key.id,
            key.name
        );
    } else {
        say!("Enabled API key {} ({}).", key.id, key.name);
    }
    print_key(&key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_takes_seconds_periods_and_none() {
        assert_eq!(
            parse_expires_in("90"),
            Ok(Setting::Set(Duration::seconds(90)))
        );
        assert_eq!(parse_expires_in("7d"), Ok(Setting::Set(Duration::days(7))));
        assert_eq!(parse_expires_in("None"), Ok(Setting::Remove));
        assert!(parse_expires_in("0").is_err());
        assert!(parse_expires_in("-5").is_err());
        assert!(parse_expires_in("3153600001").is_err());
        assert!(parse_expires_in("soon").is_err());
    }

    #[test]
    fn metadata_must_be_an_object_or_none() {
        assert!(matches!(
            parse_metadata_setting(r#"{"a":1}"#),
            Ok(Setting::Set(_))
        ));
        assert!(matches!(
            parse_metadata_setting("none"),
            Ok(Setting::Remove)
        ));
        assert!(parse_metadata_setting("[1]").is_err());
    }
}
