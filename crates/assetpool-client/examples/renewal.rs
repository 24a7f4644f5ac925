//! Calls `GET /v1/resource` every second for two minutes, across token expiry.
//!
//! Start a server with short tokens, then run this against it:
//!
//! ```sh
//! cargo run -- serve --demo --token-ttl 30        # prints the key, username and password
//! export ASSETPOOL_URL=http://127.0.0.1:8080 ASSETPOOL_API_KEY=apk_prod_... ASSETPOOL_USERNAME=demo@example.com
//! echo "$PASSWORD" | cargo run -p assetpool-client --example renewal
//! ```
//!
//! The password comes from `ASSETPOOL_PASSWORD` or, when unset, from the first
//! line of standard input. `--seconds N` changes the duration. Every line shows
//! the call's outcome, when the token in use expires, and how many logins and
//! refreshes the client has made: one login, then a refresh every ~27 s.

use assetpool_client::{Client, Credentials, Error, PASSWORD_ENV};
use assetpool_wire::{ResourceResponse, RESOURCE_PATH};
use std::io::BufRead as _;
use std::time::{Duration, Instant};

fn setting(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| Error::Config(format!("{name} is not set")))
}

fn password() -> Result<String, Error> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| Error::Config(format!("cannot read the password: {error}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn duration() -> Result<Duration, Error> {
    let arguments: Vec<String> = std::env::args().collect();
    match arguments
        .iter()
        .position(|argument| argument == "--seconds")
    {
        Some(index) => arguments
            .get(index + 1)
            .and_then(|value| value.parse().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| Error::Config("--seconds needs a number".to_owned())),
        None => Ok(Duration::from_secs(120)),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let client = Client::builder(
        setting("ASSETPOOL_URL")?,
        setting("ASSETPOOL_API_KEY")?,
        Credentials::new(setting("ASSETPOOL_USERNAME")?, password()?),
    )
    .build()?;
    let run_for = duration()?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut failures = 0_u32;
    while started.elapsed() < run_for {
        ticker.tick().await;
        let elapsed = started.elapsed().as_secs();
        let outcome = client.get_json::<ResourceResponse>(RESOURCE_PATH).await;
        let stats = client.stats();
        match outcome {
            Ok(who) => println!(
                "{elapsed:>4}s ok    {} token expires {} (logins {}, refreshes {})",
                who.user.email, who.token_expires_at, stats.logins, stats.refreshes
            ),
            Err(error) => {
                failures += 1;
                println!("{elapsed:>4}s error {error}");
            }
        }
    }
    let stats = client.stats();
    println!(
        "done: {failures} failed calls, {} logins, {} refreshes",
        stats.logins, stats.refreshes
    );
    Ok(())
}
