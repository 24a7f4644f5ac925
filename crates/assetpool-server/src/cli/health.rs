//! `assetpool health`: asks a running server whether it is ready, for
//! container health checks and service managers (the image has no shell and
//! no curl).

use clap::Args;
use std::time::Duration;

/// Arguments of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Base URL of the server.
    #[arg(
        long,
        env = "ASSETPOOL_HEALTH_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
}

/// Exits 0 when `GET {url}/readyz` answers 200, with one error line otherwise.
pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let url = format!("{}/readyz", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!("cannot reach {url}: {error}"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: not ready");
    println!("ready");
    Ok(())
}
