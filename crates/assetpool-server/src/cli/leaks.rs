//! Leaked keys at the command line: `assetpool keys check-leak`, and the
//! options of `serve` for `POST /api/keys/leaked`.
//!
//! `check-leak` reads candidate keys from standard input, one per line
//! (trimmed; empty lines skipped), and says which are keys of this service.
//! It never prints a candidate: only its line number and, for a key, the
//! key's id, name, environment and status. It is read-only unless
//! `--revoke` is given, which revokes the live ones (audited as the CLI user).

use super::output::{print_json, say};
use super::Context;
use crate::settings::LeakReportSettings;
use anyhow::Context as _;
use assetpool_core::admin::Admin;
use assetpool_core::ids::KeyId;
use assetpool_core::leaks::{check_candidates, CandidateCheck, LeakPolicy, LEAK_REVOKE_REASON};
use chrono::Utc;
use clap::Args;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use std::io::Read as _;
use std::path::PathBuf;

/// The leak-report options of `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Leaked-key reports")]
pub struct LeakReportArgs {
    /// Accept leaked-key reports signed by these public keys: a JSON file in
    /// GitHub's format ({"public_keys":[{"key_identifier","key"}]}), read at start.
    #[arg(long, env = "ASSETPOOL_LEAK_REPORT_KEYS", value_name = "FILE")]
    leak_report_keys: Option<PathBuf>,
    /// Accept leaked-key reports signed with this shared secret
    /// (X-Assetpool-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">;
    /// t at most 5 minutes away). Prefer ASSETPOOL_LEAK_REPORT_SECRET_FILE (a
    /// file holding it) or `-` (a line of standard input): on the command
    /// line, other users can read it.
    #[arg(
        long,
        env = "ASSETPOOL_LEAK_REPORT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        value_parser = super::serve::parse_secret
    )]
    leak_report_secret: Option<SecretString>,
    /// What a report of a live key does: alert (default) or alert and revoke.
    #[arg(long, env = "ASSETPOOL_ON_LEAK", value_name = "alert|revoke",
          value_parser = LeakPolicy::parse)]
    on_leak: Option<LeakPolicy>,
}

impl LeakReportArgs {
    /// The settings (flag, environment, config file or default, as the
    /// command line merged them).
    pub fn settings(&self) -> anyhow::Result<LeakReportSettings> {
        Ok(LeakReportSettings {
            public_keys_file: self.leak_report_keys.clone(),
            secret: super::secret_args::resolve(
                &super::secret_args::LEAK_REPORT_SECRET,
                self.leak_report_secret.as_ref(),
            )?
            .filter(|secret| !secret.expose_secret().trim().is_empty()),
            policy: self.on_leak.unwrap_or_default(),
        })
    }
}

/// One line of `check-leak --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckedLine {
    line: usize,
    key_id: Option<KeyId>,
    status: Option<String>,
    name: Option<String>,
    environment: Option<String>,
    revoked: bool,
}

impl CheckedLine {
    fn new(line: usize, check: &CandidateCheck) -> Self {
        let key = check.key.as_ref();
        CheckedLine {
            line,
            key_id: key.map(|key| key.id.clone()),
            status: check.status.map(|status| status.to_string()),
            name: key.map(|key| key.name.clone()),
            environment: key.map(|key| key.environment.to_string()),
            revoked: false,
        }
    }

    fn describe(&self) -> String {
        match (&self.key_id, &self.name, &self.environment, &self.status) {
            (Some(id), Some(name), Some(environment), Some(status)) => {
                let live = if self.revoked
                    || matches!(status.as_str(), "active" | "rotating" | "disabled")
                {
                    "live key"
                } else {
                    "key"
                };
                let action = if self.revoked { ": revoked now" } else { "" };
                format!(
                    "line {}: {live} {id} ({name}, {environment}, {status}){action}",
                    self.line
                )
            }
            _ => format!("line {}: not a key of this service", self.line),
        }
    }
}

/// The non-empty lines of standard input, trimmed, with their line numbers.
fn read_candidates() -> anyhow::Result<(Vec<usize>, Vec<String>)> {
    let mut input = String::new();
    std::io::stdin()
        .lock()
        .read_to_string(&mut input)
        .context("cannot read candidate keys from standard input")?;
    let (numbers, candidates) = input
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| (number, line.to_owned()))
        .unzip();
    Ok((numbers, candidates))
}

/// `keys check-leak [--json] [--revoke]`.
pub async fn check_leak(
    context: &Context,
    admin: &Admin,
    json: bool,
    revoke: bool,
) -> anyhow::Result<()> {
    let (numbers, candidates) = read_candidates()?;
    let store = context.store().await?;
    let checks = check_candidates(store.as_ref(), &candidates, Utc::now()).await?;
    let mut lines = Vec::with_capacity(checks.len());
    let mut revoked_ids = std::collections::HashSet::new();
    for (number, check) in numbers.into_iter().zip(&checks) {
        let mut line = CheckedLine::new(number, check);
        if let Some(key) = check.key.as_ref().filter(|_| revoke && check.is_live()) {
            if revoked_ids.insert(key.id.clone()) {
                admin
                    .revoke_api_key(&key.id, Some(LEAK_REVOKE_REASON))
                    .await?;
            }
            line.status = Some(assetpool_core::ApiKeyStatus::Revoked.to_string());
            line.revoked = true;
        }
        lines.push(line);
    }
    if json {
        return print_json(&lines);
    }
    for line in &lines {
        say!("{}", line.describe());
    }
    let known = checks.iter().filter(|check| check.is_known()).count();
    let live = checks.iter().filter(|check| check.is_live()).count();
    say!(
        "{known} of {} candidates are keys of this service ({live} live).",
        checks.len()
    );
    Ok(())
}
