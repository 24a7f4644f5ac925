//! Secrets the command line takes as options (`serve --alert-webhook-secret`,
//! `serve --leak-report-secret`, `login --api-key`), and where else they may
//! come from.
//!
//! Each is taken, first found: from its option; from its environment
//! variable; from a file named by the same variable with `_FILE` appended
//! (a secrets mount); from the config file where it has a key. The option's
//! value `-` reads the secret from the first line of standard input. A
//! secret typed on the command line itself can be read by every user of the
//! machine (`ps`, `/proc/PID/cmdline`): it still works, with a warning
//! ([`command_line_warnings`]).

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::ArgMatches;
use secrecy::{ExposeSecret as _, SecretString};
use std::io::BufRead as _;

/// A secret option of the command line.
#[derive(Debug, Clone, Copy)]
pub struct SecretOption {
    /// The subcommand that takes it.
    pub command: &'static str,
    /// clap's id of the option (its field name).
    pub id: &'static str,
    /// The option as typed.
    pub flag: &'static str,
    /// Its environment variable (the `_FILE` form appends `_FILE`).
    pub env: &'static str,
}

/// `serve --alert-webhook-secret`.
pub const ALERT_WEBHOOK_SECRET: SecretOption = SecretOption {
    command: "serve",
    id: "alert_webhook_secret",
    flag: "--alert-webhook-secret",
    env: "ASSETPOOL_ALERT_WEBHOOK_SECRET",
};

/// `serve --leak-report-secret`.
pub const LEAK_REPORT_SECRET: SecretOption = SecretOption {
    command: "serve",
    id: "leak_report_secret",
    flag: "--leak-report-secret",
    env: "ASSETPOOL_LEAK_REPORT_SECRET",
};

/// `login --api-key`.
pub const API_KEY: SecretOption = SecretOption {
    command: "login",
    id: "api_key",
    flag: "--api-key",
    env: "ASSETPOOL_API_KEY",
};

const SECRET_OPTIONS: [SecretOption; 3] = [ALERT_WEBHOOK_SECRET, LEAK_REPORT_SECRET, API_KEY];

/// The option's value that means "read it from standard input".
pub const FROM_STDIN: &str = "-";

/// One warning per secret given as a command-line argument (not `-`),
/// naming the option and the safer ways, never the value.
pub fn command_line_warnings(matches: &ArgMatches) -> Vec<String> {
    SECRET_OPTIONS
        .iter()
        .filter(|option| {
            matches
                .subcommand_matches(option.command)
                .filter(|command| command.value_source(option.id) == Some(ValueSource::CommandLine))
                .and_then(|command| command.get_raw(option.id))
                .is_some_and(|mut values| values.all(|value| value.to_str() != Some(FROM_STDIN)))
        })
        .map(|option| {
            format!(
                "{flag} on the command line can be read by other users of this machine \
                 (ps, /proc); give it in {env}_FILE (a file), {env}, or as `{flag} -` \
                 (standard input)",
                flag = option.flag,
                env = option.env
            )
        })
        .collect()
}

/// The secret of `option`: `given` (the option, its environment variable,
/// the file its `_FILE` variable names or the config file, as clap merged
/// them: see [`super::layers`]; `-` reads the first line of standard
/// input), else `None`.
pub fn resolve(
    option: &SecretOption,
    given: Option<&SecretString>,
) -> anyhow::Result<Option<SecretString>> {
    match given {
        Some(given) if given.expose_secret() == FROM_STDIN => read_stdin_line(option).map(Some),
        Some(given) => Ok(Some(given.clone())),
        None => Ok(None),
    }
}

/// Whether `given` asks for standard input.
pub fn reads_stdin(given: Option<&SecretString>) -> bool {
    given.is_some_and(|secret| secret.expose_secret() == FROM_STDIN)
}

fn read_stdin_line(option: &SecretOption) -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read {} from standard input", option.flag))?;
    let secret = line.trim();
    if secret.is_empty() {
        anyhow::bail!(
            "{} -: no secret on standard input (give it as the first line)",
            option.flag
        );
    }
    if assetpool_wire::text::contains_control(secret) {
        anyhow::bail!(
            "{} -: the line on standard input holds a control character",
            option.flag
        );
    }
    Ok(SecretString::from(secret.to_owned()))
}
