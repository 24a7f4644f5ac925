//! Where settings come from, merged once: flag > environment > `_FILE`
//! form of a secret's environment variable > config file > default.
//!
//! The config file and the `_FILE` forms do not get parsers of their own:
//! their values become the default values of the very options they stand for
//! (clap then applies the precedence above), after each value has been
//! checked by that option's own value parser. A file value is therefore
//! checked exactly like the flag (same ranges, same duration grammar, same
//! messages), and an error names the file, the line and the key. Keys that
//! name no option are refused the same way, so a typo is never ignored.

use anyhow::Context as _;
use clap::builder::OsStr;
use clap::{Arg, ArgAction, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The subcommands whose options a config file sets, besides the global
/// options: `serve` and `config check` (which checks what `serve` would run
/// with).
const SERVER_COMMANDS: [&[&str]; 2] = [&["serve"], &["config", "check"]];

/// Older spellings of config keys, and the option each stands for.
const ALIASES: [(&str, &str); 2] = [
    ("route-scopes", "route-scope"),
    ("alert-webhooks", "alert-webhook"),
];

/// Global options a config file may not set: where admin commands send the
/// admin's credentials, how the admin's password is read, and the file itself.
const COMMAND_LINE_ONLY: [&str; 3] = ["server", "password-stdin", "config"];

/// Options whose values are secrets (or URLs that may hold one): never
/// echoed in an error, `--help` or `config check`, and readable from a file
/// named by their environment variable with `_FILE` appended.
pub const SECRET_OPTIONS: [&str; 6] = [
    "database",
    "alert-webhook",
    "alert-webhook-secret",
    "leak-report-secret",
    "limits-store",
    "api-key",
];

/// Where one setting's value came from, for `config check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The config file, at this line.
    File {
        /// 1-based line of the key.
        line: usize,
    },
    /// A file named by this environment variable (`..._FILE`).
    SecretFile {
        /// The variable.
        variable: String,
    },
}

/// The layers read before the command line is parsed: the values each
/// option takes from the config file or a `_FILE` variable.
#[derive(Debug, Default)]
pub struct Layers {
    /// The config file, if one is named.
    pub config_file: Option<PathBuf>,
    /// Option (long name) → where its injected default came from.
    pub sources: BTreeMap<String, Source>,
}

/// One key of the config file.
struct FileEntry {
    key: String,
    line: usize,
    values: Vec<String>,
}

/// `command` with the config file's values and the `_FILE` forms of secrets
/// as the default values of their options, each checked by its option's
/// parser first. `arguments` are the process's (to find `--config`).
pub fn apply(command: Command, arguments: &[OsString]) -> anyhow::Result<(Command, Layers)> {
    let mut command = command;
    let mut layers = Layers {
        config_file: config_path(arguments),
        ..Layers::default()
    };
    if let Some(path) = layers.config_file.clone() {
        for entry in read_file(&path)? {
            let long = canonical(&entry.key);
            if COMMAND_LINE_ONLY.contains(&long) {
                anyhow::bail!(
                    "invalid config file {}, line {}: {} is taken from the command line or the \
                     environment only (a config file must not send admin credentials elsewhere)",
                    path.display(),
                    entry.line,
                    entry.key
                );
            }
            let Some(arg) = find_option(&command, long) else {
                anyhow::bail!(
                    "invalid config file {}, line {}: unknown key {} (the keys are the long options of serve and the global options)",
                    path.display(),
                    entry.line,
                    entry.key
                );
            };
            check_values(&arg, &entry.values).map_err(|reason| {
                anyhow::anyhow!(
                    "invalid config file {}, line {}: {}: {reason}",
                    path.display(),
                    entry.line,
                    entry.key
                )
            })?;
            command = set_default(command, long, &entry.values);
            layers
                .sources
                .insert(long.to_owned(), Source::File { line: entry.line });
        }
    }
    for (path, arg) in secret_options(&command, &[]) {
        let Some(long) = arg.get_long().map(str::to_owned) else {
            continue;
        };
        let Some(variable) = arg.get_env().and_then(|name| name.to_str()) else {
            continue;
        };
        if std::env::var_os(variable).is_some() {
            continue;
        }
        let file_variable = format!("{variable}_FILE");
        let Some(file) = std::env::var_os(&file_variable) else {
            continue;
        };
        let value = read_secret_file(&file_variable, Path::new(&file))?;
        let values = if is_list(&arg) {
            value.split(',').map(str::to_owned).collect()
        } else {
            vec![value]
        };
        check_values(&arg, &values)
            .map_err(|reason| anyhow::anyhow!("{file_variable}: {reason}"))?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        command = mut_path(command, &path, &|sub: Command| set_on(sub, &long, &values));
        layers.sources.insert(
            long,
            Source::SecretFile {
                variable: file_variable,
            },
        );
    }
    Ok((command, layers))
}

/// `--config FILE` or `--config=FILE` among the arguments, else
/// `ASSETPOOL_CONFIG`. Read before clap parses, since the file's values
/// become defaults of the command clap parses.
fn config_path(arguments: &[OsString]) -> Option<PathBuf> {
    let mut arguments = arguments.iter().skip(1);
    while let Some(argument) = arguments.next() {
        let text = argument.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return arguments.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("ASSETPOOL_CONFIG")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, long)| long)
}

/// The option of long name `long`: a global option of `command`, else one of
/// `serve`.
fn find_option(command: &Command, long: &str) -> Option<Arg> {
    let is_it = |arg: &&Arg| arg.get_long() == Some(long) && !arg.is_positional();
    command
        .get_arguments()
        .find(is_it)
        .or_else(|| {
            command
                .find_subcommand("serve")?
                .get_arguments()
                .find(is_it)
        })
        .cloned()
}

fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// Runs every value through the option's own parser (on a command holding
/// only that option, as `--long=VALUE`: clap's parsers are not public on
/// their own); the reason of the first refusal, without the value when it is
/// a secret.
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    if values.len() != 1 && !is_list(arg) {
        return Err("takes one value, not a list".to_owned());
    }
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let arguments: Vec<String> = if arg.get_action().takes_values() {
        values
            .iter()
            .map(|value| format!("--{long}={value}"))
            .collect()
    } else {
        // A switch: true sets it, false leaves it off.
        match values {
            [value] if value == "true" => vec![format!("--{long}")],
            [value] if value == "false" => Vec::new(),
            _ => return Err("expected true or false".to_owned()),
        }
    };
    let probe = Command::new("assetpool")
        .no_binary_name(true)
        .arg(arg.clone().global(false));
    let Err(error) = probe.try_get_matches_from(arguments) else {
        return Ok(());
    };
    if SECRET_OPTIONS.contains(&long) {
        return Err("invalid value (not shown: it is a secret)".to_owned());
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid value");
    Err(first.trim_start_matches("error: ").to_owned())
}

/// Makes `values` the default of the option `long`: the global option, else
/// the option of each of [`SERVER_COMMANDS`].
fn set_default(command: Command, long: &str, values: &[String]) -> Command {
    if option_id(&command, long).is_some() {
        return set_on(command, long, values);
    }
    let mut command = command;
    for path in SERVER_COMMANDS {
        command = mut_path(command, path, &|sub: Command| set_on(sub, long, values));
    }
    command
}

/// `command` with `values` as the default of its option `long`, hidden from
/// `--help` (it may be a secret; `config check` shows where it came from).
fn set_on(command: Command, long: &str, values: &[String]) -> Command {
    let Some(id) = option_id(&command, long) else {
        return command;
    };
    let values: Vec<OsStr> = values
        .iter()
        .map(|value| OsStr::from(value.clone()))
        .collect();
    command.mut_arg(id, |arg| {
        arg.default_values(values).hide_default_value(true)
    })
}

fn option_id(command: &Command, long: &str) -> Option<clap::Id> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long) && !arg.is_positional())
        .map(|arg| arg.get_id().clone())
}

/// The secret options ([`SECRET_OPTIONS`]) of `command` and its
/// subcommands, with the path of the command that holds each (global
/// options are found once, at the top).
fn secret_options(command: &Command, path: &[String]) -> Vec<(Vec<String>, Arg)> {
    let mut found: Vec<(Vec<String>, Arg)> = command
        .get_arguments()
        .filter(|arg| !arg.is_global_set() || path.is_empty())
        .filter(|arg| {
            arg.get_long()
                .is_some_and(|long| SECRET_OPTIONS.contains(&long))
        })
        .map(|arg| (path.to_vec(), arg.clone()))
        .collect();
    for sub in command.get_subcommands() {
        let mut sub_path = path.to_vec();
        sub_path.push(sub.get_name().to_owned());
        found.extend(secret_options(sub, &sub_path));
    }
    found
}

fn mut_path(command: Command, path: &[&str], change: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => change(command),
        Some((name, rest)) => {
            if command.find_subcommand(name).is_none() {
                return command;
            }
            command.mut_subcommand(*name, |sub| mut_path(sub, rest, change))
        }
    }
}

/// The keys of the config file with their lines and values as text.
fn read_file(path: &Path) -> anyhow::Result<Vec<FileEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(&text).map_err(|error| {
            let line = error.span().map_or(String::new(), |span| {
                format!(", line {}", line_of(span.start))
            });
            anyhow::anyhow!(
                "invalid config file {}{line}: {}",
                path.display(),
                error.message()
            )
        })?;
    table
        .into_iter()
        .map(|(key, value)| {
            let line = line_of(value.span().start);
            let values = scalar_values(value.get_ref()).and_then(|values| {
                if values
                    .iter()
                    .any(|value| assetpool_wire::text::contains_control(value))
                {
                    Err("holds a control character (NUL, escape, line break, ...)")
                } else {
                    Ok(values)
                }
            });
            let values = values.map_err(|reason| {
                anyhow::anyhow!(
                    "invalid config file {}, line {line}: {key}: {reason}",
                    path.display()
                )
            })?;
            Ok(FileEntry { key, line, values })
        })
        .collect()
}

fn scalar_values(value: &toml::Value) -> Result<Vec<String>, &'static str> {
    match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|value| vec![value]),
    }
}

fn scalar(value: &toml::Value) -> Result<String, &'static str> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        toml::Value::Datetime(time) => Ok(time.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err("expected a value or a list of values, not a table or nested list")
        }
    }
}

/// The secret in the file named by `variable`: its text, trimmed, not empty,
/// without control characters.
pub(crate) fn read_secret_file(variable: &str, path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {variable} ({})", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        anyhow::bail!("{variable} names an empty file");
    }
    if assetpool_wire::text::contains_control(secret) {
        anyhow::bail!("the file of {variable} holds a control character");
    }
    Ok(secret.to_owned())
}

/// A secret that is read from the environment rather than an option
/// (`ASSETPOOL_PASSWORD`, the API key of `--server`): the variable, else the
/// file its `_FILE` form names, else `None`.
pub(crate) fn secret_from_environment(variable: &str) -> anyhow::Result<Option<String>> {
    if let Some(value) = std::env::var(variable)
        .ok()
        .filter(|value| !value.trim().is_empty())
    {
        return Ok(Some(value));
    }
    let file_variable = format!("{variable}_FILE");
    match std::env::var_os(&file_variable) {
        Some(path) => read_secret_file(&file_variable, Path::new(&path)).map(Some),
        None => Ok(None),
    }
}
