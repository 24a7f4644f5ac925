//! `assetpool login`: the client side of the password grant.

use super::read_password_from_stdin;
use anyhow::Context as _;
use assetpool_wire::{ErrorResponse, LoginRequest, TokenResponse, API_KEY_HEADER, LOGIN_PATH};
use clap::Args;
use secrecy::ExposeSecret;
use std::time::Duration;

/// Arguments of `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The application's API key.
    #[arg(long, env = "ASSETPOOL_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Email address.
    #[arg(long)]
    username: String,
    /// Read the password from standard input (required).
    #[arg(long, required = true)]
    password_stdin: bool,
}

/// Logs in and prints the token response JSON.
pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let password = read_password_from_stdin()?;
    let endpoint = format!("{}{LOGIN_PATH}", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let body = LoginRequest {
        username: args.username,
        password: password.expose_secret().to_owned(),
    };
    let response = client
        .post(&endpoint)
        .header(API_KEY_HEADER, &args.api_key)
        .json(&body)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!("cannot reach {endpoint}: {}", error.without_url()))?;
    let status = response.status();
    let text = response.text().await.context("cannot read the answer")?;
    if status.is_success() {
        let tokens: TokenResponse =
            serde_json::from_str(&text).context("the server's answer is not a token response")?;
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(());
    }
    match serde_json::from_str::<ErrorResponse>(&text) {
        Ok(error) => anyhow::bail!(
            "login failed ({status}): {}: {}",
            error.error,
            error.message
        ),
        Err(_) => anyhow::bail!("login failed with HTTP status {status}"),
    }
}
