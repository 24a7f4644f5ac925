//! `assetpool config check`: the settings `serve` would run with, merged
//! from flags, environment, `_FILE` variables, the config file and defaults
//! ([`super::layers`]), checked as `serve` checks them, and printed with
//! where each came from and every secret redacted.

use super::layers::{Layers, Source, SECRET_OPTIONS};
use super::output::{print_json, print_table, say};
use super::serve::ServeArgs;
use super::{redact_url, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, Subcommand};
use serde::Serialize;

/// Config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Checks the merged settings (flag > environment > config file >
    /// default) as `serve` would, and prints them with their sources and
    /// secrets redacted; exit 1 naming the offending key otherwise.
    Check(CheckArgs),
}

/// Arguments of `config check`: those of `serve`, and `--json`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The settings to check, as `serve` takes them.
    #[command(flatten)]
    serve: Box<ServeArgs>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What the command line was read from, for `config check` to say where each
/// value came from.
pub struct Invocation {
    /// The command as parsed (the config file's values as its defaults).
    pub command: Command,
    /// The parsed arguments.
    pub matches: ArgMatches,
    /// The config file and the `_FILE` variables that were read.
    pub layers: Layers,
}

/// One setting in the output.
#[derive(Debug, Serialize)]
struct Setting {
    key: String,
    value: Option<serde_json::Value>,
    source: String,
}

/// The report of `config check --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    config_file: Option<String>,
    valid: bool,
    settings: Vec<Setting>,
}

/// Runs `config check`.
pub(crate) fn run(
    context: &Context,
    command: ConfigCommand,
    invocation: &Invocation,
) -> anyhow::Result<()> {
    let ConfigCommand::Check(args) = command;
    super::serve::settings(context, &args.serve)?;
    let listed = listed_settings(invocation);
    let config_file = invocation
        .layers
        .config_file
        .as_ref()
        .map(|path| path.display().to_string());
    if args.json {
        return print_json(&Report {
            config_file,
            valid: true,
            settings: listed,
        });
    }
    say!(
        "config file: {}",
        config_file
            .as_deref()
            .unwrap_or("none (no --config, no ASSETPOOL_CONFIG)")
    );
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|setting| {
            let value = match &setting.value {
                None => "-".to_owned(),
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(other) => other.to_string(),
            };
            vec![setting.key.clone(), value, setting.source.clone()]
        })
        .collect();
    print_table(&["KEY", "VALUE", "SOURCE"], &rows);
    say!("The settings are valid.");
    Ok(())
}

/// Every option of `serve` and every global option with its value (as text;
/// secrets redacted) and source, by name.
fn listed_settings(invocation: &Invocation) -> Vec<Setting> {
    let Some(check) = invocation
        .command
        .find_subcommand("config")
        .and_then(|config| config.find_subcommand("check"))
    else {
        return Vec::new();
    };
    let Some(matches) = invocation
        .matches
        .subcommand_matches("config")
        .and_then(|config| config.subcommand_matches("check"))
    else {
        return Vec::new();
    };
    let globals = invocation
        .command
        .get_arguments()
        .filter(|arg| arg.is_global_set());
    let mut listed: Vec<Setting> = globals
        .chain(check.get_arguments().filter(|arg| !arg.is_global_set()))
        .filter_map(|arg| {
            let key = arg.get_long()?;
            if matches!(key, "json" | "help" | "version" | "demo" | "config") {
                return None;
            }
            let id = arg.get_id().as_str();
            let values: Option<Vec<String>> = matches.get_raw(id).map(|raw| {
                raw.map(|value| value.to_string_lossy().into_owned())
                    .collect()
            });
            let source = source(
                matches.value_source(id),
                arg.get_env().and_then(|env| env.to_str()),
                invocation.layers.sources.get(key),
            );
            let value = values.map(|values| shown(key, values, arg.get_action()));
            Some(Setting {
                key: key.to_owned(),
                value,
                source,
            })
        })
        .collect::<Vec<_>>();
    listed.sort_by(|left, right| left.key.cmp(&right.key));
    listed
}

fn source(found: Option<ValueSource>, env: Option<&str>, layer: Option<&Source>) -> String {
    match (found, layer) {
        (Some(ValueSource::CommandLine), _) => "flag".to_owned(),
        (Some(ValueSource::EnvVariable), _) => format!("environment {}", env.unwrap_or("")),
        (Some(ValueSource::DefaultValue), Some(Source::File { line })) => {
            format!("config file, line {line}")
        }
        (Some(ValueSource::DefaultValue), Some(Source::SecretFile { variable })) => {
            format!("file of {variable}")
        }
        _ => "default".to_owned(),
    }
}

/// A value as `config check` shows it: secrets redacted (URLs keep all but
/// their password), lists as JSON arrays.
fn shown(key: &str, values: Vec<String>, action: &clap::ArgAction) -> serde_json::Value {
    let values: Vec<String> = values
        .into_iter()
        .map(|value| match key {
            "database" | "limits-store" | "server" | "upstream" => redact_url(&value),
            _ if SECRET_OPTIONS.contains(&key) => "[redacted]".to_owned(),
            _ => value,
        })
        .collect();
    if matches!(action, clap::ArgAction::Append) {
        serde_json::Value::from(values)
    } else {
        serde_json::Value::from(values.join(" "))
    }
}
