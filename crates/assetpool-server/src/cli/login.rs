//! `assetpool login`: the client side of the password grant, through the
//! `assetpool-client` SDK.

use super::{read_password_from_stdin, secret_args};
use assetpool_client::{Client, Credentials, Error};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Arguments of `login`.
#[derive(Args)]
pub struct LoginArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The application's API key. Prefer ASSETPOOL_API_KEY_FILE (a file
    /// holding it), ASSETPOOL_API_KEY or `-` (the first line of standard
    /// input, the password then on the second): on the command line, other
    /// users can read it.
    #[arg(long, env = "ASSETPOOL_API_KEY", hide_env_values = true,
          value_parser = super::serve::parse_secret)]
    api_key: Option<SecretString>,
    /// Email address.
    #[arg(long)]
    username: String,
    /// Scopes to ask for, space-separated (default: whatever the API key and
    /// the user allow); the answer's `scope` names those granted.
    #[arg(long, value_name = "SCOPES")]
    scope: Option<String>,
}

impl std::fmt::Debug for LoginArgs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LoginArgs")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("username", &self.username)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Logs in and prints the token response JSON; the password is the first
/// line of standard input (`--password-stdin`, a global option, is required).
pub async fn run(args: LoginArgs, password_stdin: bool) -> anyhow::Result<()> {
    super::require_password_stdin("login", password_stdin)?;
    // The key first: with `--api-key -` it is the first line of stdin.
    let api_key =
        secret_args::resolve(&secret_args::API_KEY, args.api_key.as_ref())?.ok_or_else(|| {
            anyhow::anyhow!(
                "no API key: give ASSETPOOL_API_KEY_FILE, ASSETPOOL_API_KEY or --api-key"
            )
        })?;
    let password = read_password_from_stdin()?;
    let url = args.url.trim_end_matches('/').to_owned();
    let mut builder = Client::builder(
        url.clone(),
        api_key.expose_secret().to_owned(),
        Credentials::new(args.username, password.expose_secret()),
    )
    .timeout(Duration::from_secs(30));
    if let Some(scope) = args.scope {
        builder = builder.scope(scope);
    }
    let client = builder
        .build()
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    match client.login().await {
        Ok(tokens) => {
            println!("{}", serde_json::to_string_pretty(&tokens)?);
            Ok(())
        }
        Err(Error::Api(refusal)) if refusal.error.is_empty() => anyhow::bail!(
            "login failed with HTTP status {}",
            status_text(refusal.status)
        ),
        Err(Error::Api(refusal)) => anyhow::bail!(
            "login failed ({}): {}: {}",
            status_text(refusal.status),
            refusal.error,
            refusal.message
        ),
        Err(Error::Transport(error)) => anyhow::bail!("cannot reach {url}: {error}"),
        Err(other) => anyhow::bail!("login failed: {other}"),
    }
}

/// `401 Unauthorized`, as the status used to be printed.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(status) => status.to_string(),
        Err(_) => status.to_string(),
    }
}
