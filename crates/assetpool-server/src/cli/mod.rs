//! The `assetpool` command line.
//!
//! Global options may stand before or after the subcommand. Precedence:
//! flag > environment > config file (TOML, same keys as the long options) > default.

mod alerts;
mod applications;
mod audit;
mod backend;
mod config;
pub mod config_check;
mod durations;
mod health;
mod key_lifecycle;
mod keys;
pub mod layers;
mod leaks;
mod login;
mod monitoring_args;
mod output;
mod remote;
mod scope_args;
pub mod secret_args;
mod serve;
mod signing_keys;
mod transfer;
mod tunnel_args;
mod usage;
mod users;

use crate::key_encryption::{Generate, KeyEncryption};
use crate::telemetry::{self, LogFormat};
use anyhow::Context as _;
use assetpool_core::admin::{Actor, Admin};
use assetpool_core::password::PasswordHasher;
use assetpool_core::{KeySealer, Store, SystemClock};
use backend::Backend;
use clap::{Parser, Subcommand};
pub use config::FileConfig;
use output::say;
use remote::{AdminPassword, RemoteAdmin};
use secrecy::SecretString;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Authentication service for HTTP APIs: API keys plus short-lived bearer tokens.
#[derive(Debug, Parser)]
#[command(name = "assetpool", version, about, propagate_version = true)]
pub struct Cli {
    /// Database URL.
    #[arg(
        long,
        global = true,
        env = "ASSETPOOL_DATABASE_URL",
        value_name = "URL"
    )]
    pub database: Option<String>,
    /// TOML config file with the same keys as the long options.
    #[arg(long, global = true, env = "ASSETPOOL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Format of log lines on stderr.
    #[arg(long, global = true, env = "ASSETPOOL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// File holding the key-encryption key of signing keys (32 bytes, base64 or hex).
    /// The key itself may instead be given in ASSETPOOL_SIGNING_KEY_KEK.
    #[arg(
        long,
        global = true,
        env = "ASSETPOOL_SIGNING_KEY_KEK_FILE",
        value_name = "FILE"
    )]
    pub signing_key_kek_file: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// Run the admin command against this running server over its admin API
    /// (no database access), as the admin of ASSETPOOL_USERNAME with
    /// ASSETPOOL_API_KEY and ASSETPOOL_PASSWORD (or --password-stdin).
    #[arg(long, global = true, env = "ASSETPOOL_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Read a password from the first line of standard input: the new
    /// password of `users create` and `users set-password`; with --server,
    /// for other commands, the admin's.
    #[arg(long, global = true)]
    pub password_stdin: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the HTTP server.
    Serve(serve::ServeArgs),
    /// Issues, lists, rotates and revokes API keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Manages user accounts.
    Users {
        /// What to do.
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Manages applications (the owners of keys) and their members.
    Applications {
        /// What to do.
        #[command(subcommand)]
        command: applications::ApplicationsCommand,
    },
    /// Lists and acknowledges alerts on suspicious use.
    Alerts {
        /// What to do.
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// Reads the audit log of admin actions.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Lists, rotates and seals token-signing keys.
    SigningKeys {
        /// What to do.
        #[command(subcommand)]
        command: signing_keys::SigningKeysCommand,
    },
    /// Logs in to a running server and prints the token response.
    Login(login::LoginArgs),
    /// Asks a running server whether it is ready (`GET /readyz`): exit 0 when it is.
    Health(health::HealthArgs),
    /// Writes all durable state as JSON lines on stdout (to move to another backend).
    Export(transfer::ExportArgs),
    /// Reads an export (JSON lines) from stdin into an empty database.
    Import(transfer::ImportArgs),
    /// Prints a shell completion script (`assetpool completions bash > /etc/bash_completion.d/assetpool`).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Checks the settings `serve` would run with (`config check`).
    Config {
        /// What to do.
        #[command(subcommand)]
        command: config_check::ConfigCommand,
    },
    /// Runs database migrations.
    Migrate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The command line as the binary parses it: [`Cli`], with the values of
/// environment variables hidden from every `--help` (a database URL, a
/// webhook URL or a secret in the environment is never printed).
pub fn command() -> clap::Command {
    fn without_env_values(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| arg.hide_env_values(true))
            .mut_subcommands(without_env_values)
    }
    without_env_values(<Cli as clap::CommandFactory>::command())
}

/// Resolved global options.
pub(crate) struct Context {
    pub database_url: String,
    pub file: FileConfig,
    pub cli_kek_file: Option<PathBuf>,
    /// `--server`: the running server the admin commands go to.
    pub server: Option<String>,
    /// `--password-stdin`.
    pub password_stdin: bool,
}

impl Context {
    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        crate::storage::open_store(&self.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    redact_url(&self.database_url)
                )
            })
    }

    pub fn signing_key_kek(&self) -> anyhow::Result<Option<secrecy::SecretBox<str>>> {
        config::signing_key_kek(self.cli_kek_file.as_deref())
    }

    /// The file the configured key-encryption key comes from (`None` when
    /// it is given in the environment or not configured).
    pub fn configured_kek_file(&self) -> Option<PathBuf> {
        config::configured_kek_file(self.cli_kek_file.as_deref())
    }

    /// The key-encryption key of the signing keys in `store`.
    pub async fn key_encryption(
        &self,
        store: &dyn Store,
        generate: Generate,
    ) -> anyhow::Result<KeyEncryption> {
        let configured = self.signing_key_kek()?;
        KeyEncryption::resolve(&self.database_url, configured.as_ref(), store, generate).await
    }

    /// Admin operations on the database, with its key-encryption key.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        self.admin_generating(Generate::Never).await
    }

    /// As [`Context::admin`], generating the key file beside a SQLite
    /// database if `generate` says so (for commands that create signing keys).
    pub async fn admin_generating(&self, generate: Generate) -> anyhow::Result<Admin> {
        let store = self.store().await?;
        let encryption = self.key_encryption(store.as_ref(), generate).await?;
        encryption.log_generated();
        self.admin_with(store, encryption.sealer)
    }

    /// Where the admin commands act: the server of `--server` (the admin's
    /// password from stdin with `--password-stdin`), else the database.
    pub async fn backend(&self) -> anyhow::Result<Backend> {
        self.backend_with(Generate::Never, self.admin_password())
            .await
    }

    /// As [`Context::backend`] for a command that reads a password of its
    /// own from stdin: the admin's comes from the environment only.
    pub async fn backend_keeping_stdin(&self) -> anyhow::Result<Backend> {
        self.backend_with(Generate::Never, AdminPassword::Environment)
            .await
    }

    /// As [`Context::backend`]; on the database, generating the key file
    /// as `generate` says.
    pub async fn backend_with(
        &self,
        generate: Generate,
        password: AdminPassword,
    ) -> anyhow::Result<Backend> {
        match &self.server {
            Some(server) => Ok(Backend::Remote(
                RemoteAdmin::connect(server, password).await?,
            )),
            None => Ok(Backend::Direct(Box::new(
                self.admin_generating(generate).await?,
            ))),
        }
    }

    /// Where the admin's password comes from with `--server`.
    pub fn admin_password(&self) -> AdminPassword {
        if self.password_stdin {
            AdminPassword::Stdin
        } else {
            AdminPassword::Environment
        }
    }

    /// Refuses `command` with `--server`: it works on the database host only.
    pub fn database_host_only(&self, command: &str) -> anyhow::Result<()> {
        match self.server {
            Some(_) => Err(remote::not_remote(command, "runs on the database host")),
            None => Ok(()),
        }
    }

    /// Admin operations on `store` with `sealer`.
    pub fn admin_with(&self, store: Arc<dyn Store>, sealer: KeySealer) -> anyhow::Result<Admin> {
        let hasher = PasswordHasher::new(self.file.argon2_settings()?)?;
        Ok(Admin::new(store, Arc::new(SystemClock), hasher, sealer)
            .with_actor(Actor::Cli { os_user: os_user() })
            .with_webhook_targets(config::webhook_targets(false, &self.file)))
    }
}

/// The operating-system user the audit log names: the user of the process's
/// effective uid, looked up in the user database (never `$USER` or
/// `$LOGNAME`, which the caller sets at will); `unknown` if it has no name.
fn os_user() -> String {
    whoami::fallible::username()
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && !name.chars().any(char::is_control))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Hides the passwords of a URL (database, Redis, server) before showing it:
/// the one of `user:password@` and those of `password=`, `sslpassword=` and
/// `pass=` query parameters.
pub(crate) fn redact_url(url: &str) -> String {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let mut shown = match (address.find("://"), address.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!(
                "{}://[redacted]@{}",
                &address[..scheme_end],
                &address[at + 1..]
            )
        }
        _ => address.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _))
                    if ["password", "sslpassword", "pass"]
                        .contains(&name.to_ascii_lowercase().as_str()) =>
                {
                    format!("{name}=[redacted]")
                }
                _ => parameter.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&parameters.join("&"));
    }
    shown
}

/// Reads the first line of standard input as a password; at a terminal,
/// asks for it on the terminal without echoing what is typed.
pub(crate) fn read_password_from_stdin() -> anyhow::Result<SecretString> {
    use std::io::IsTerminal as _;
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
            .context("cannot read the password from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line
    };
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("no password on standard input (give it as the first line)");
    }
    Ok(SecretString::from(password.to_owned()))
}

/// Refuses `command` without `--password-stdin`: its password is read
/// from standard input only, never from arguments.
pub(crate) fn require_password_stdin(command: &str, given: bool) -> anyhow::Result<()> {
    if given {
        return Ok(());
    }
    anyhow::bail!(
        "`{command}` needs --password-stdin: the password is the first line of standard \
         input (never an argument)"
    )
}

/// Runs the parsed command line (`invocation`: what it was parsed from, for
/// `config check`).
pub async fn run(cli: Cli, invocation: config_check::Invocation) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let log_format = cli.log_format.unwrap_or(LogFormat::Pretty);
    let (level, otlp_endpoint) = match &cli.command {
        Command::Serve(args) => ("info", args.otlp_endpoint()),
        _ => ("warn", None),
    };
    let telemetry = start_telemetry(log_format, level, otlp_endpoint)?;
    let result = run_command(cli, invocation, file).await;
    #[cfg(feature = "otlp")]
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    #[cfg(not(feature = "otlp"))]
    let () = telemetry;
    result
}

/// The log subscriber, and with `--otlp-endpoint` the span exporter (whose
/// queue is sent before the process ends).
#[cfg(feature = "otlp")]
fn start_telemetry(
    format: LogFormat,
    level: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Option<telemetry::otlp::Telemetry>> {
    match otlp_endpoint {
        Some(endpoint) => telemetry::otlp::init(format, level, endpoint).map(Some),
        None => {
            telemetry::init(format, level);
            Ok(None)
        }
    }
}

/// The log subscriber; `--otlp-endpoint` is refused by a build without
/// the `otlp` feature.
#[cfg(not(feature = "otlp"))]
fn start_telemetry(
    format: LogFormat,
    level: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<()> {
    if otlp_endpoint.is_some() {
        anyhow::bail!(
            "--otlp-endpoint: this assetpool was built without the `otlp` feature (span export)"
        );
    }
    telemetry::init(format, level);
    Ok(())
}

async fn run_command(
    cli: Cli,
    invocation: config_check::Invocation,
    file: FileConfig,
) -> anyhow::Result<()> {
    let database_url = cli
        .database
        .clone()
        .unwrap_or_else(|| crate::settings::DEFAULT_DATABASE_URL.to_owned());
    let context = Context {
        database_url,
        file,
        cli_kek_file: cli.signing_key_kek_file.clone(),
        server: cli
            .server
            .clone()
            .filter(|server| !server.trim().is_empty()),
        password_stdin: cli.password_stdin,
    };
    match &cli.command {
        Command::Serve(_) => context.database_host_only("serve")?,
        Command::Export(_) => context.database_host_only("export")?,
        Command::Import(_) => context.database_host_only("import")?,
        Command::Migrate { .. } => context.database_host_only("migrate")?,
        _ => {}
    }
    match cli.command {
        Command::Serve(args) => serve::run(&context, args).await,
        Command::Keys { command } => keys::run(&context, command).await,
        Command::Users { command } => users::run(&context, command).await,
        Command::Applications { command } => applications::run(&context, command).await,
        Command::Alerts { command } => alerts::run(&context, command).await,
        Command::Audit { command } => audit::run(&context, command).await,
        Command::SigningKeys { command } => signing_keys::run(&context, command).await,
        Command::Login(args) => login::run(args, context.password_stdin).await,
        Command::Health(args) => health::run(args).await,
        Command::Export(args) => transfer::export(&context, args).await,
        Command::Import(args) => transfer::import(&context, args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "assetpool", &mut std::io::stdout());
            Ok(())
        }
        Command::Config { command } => config_check::run(&context, command, &invocation),
        Command::Migrate { json } => {
            context.store().await?;
            let database = redact_url(&context.database_url);
            if json {
                output::print_json(&serde_json::json!({"migrated": true, "database": database}))
            } else {
                say!("Migrations applied to {database}.");
                Ok(())
            }
        }
    }
}
