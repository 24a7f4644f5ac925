//! `--upstream` and `--upstream-timeout` from flags, environment and config
//! file, on the real binary.

use crate::binary::{login, seed, serve};
use crate::scenarios::start_upstream;
use std::process::{Command, Stdio};

/// A slow answer is cut after the configured second; a fast one passes.
async fn assert_upstream_with_one_second(url: &str, key: &str) {
    let token = login(url, key).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{url}{path}"))
            .header("x-api-key", key)
            .header("x-api-token", &token)
            .send()
    };
    assert_eq!(get("/v2/things").await.unwrap().status(), 200);
    assert_eq!(get("/sleep/3000").await.unwrap().status(), 504);
}

#[tokio::test]
async fn upstream_from_the_config_file() {
    let directory = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/gateway.db", directory.path().display());
    let key = seed(&database);
    let upstream = start_upstream().await;
    let config = directory.path().join("assetpool.toml");
    std::fs::write(
        &config,
        format!("upstream = \"http://{upstream}\"\nupstream-timeout = 1\n"),
    )
    .unwrap();
    let (_server, url) = serve(&database, &["--config", config.to_str().unwrap()], &[]);
    assert_upstream_with_one_second(&url, &key).await;
}

#[tokio::test]
async fn upstream_from_the_environment() {
    let directory = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/gateway.db", directory.path().display());
    let key = seed(&database);
    let upstream = format!("http://{}", start_upstream().await);
    let environment = [
        ("ASSETPOOL_UPSTREAM", upstream.as_str()),
        ("ASSETPOOL_UPSTREAM_TIMEOUT", "1"),
    ];
    let (_server, url) = serve(&database, &[], &environment);
    assert_upstream_with_one_second(&url, &key).await;
}

#[test]
fn an_unusable_upstream_is_refused_at_start() {
    let directory = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/gateway.db", directory.path().display());
    for upstream in [
        "https://127.0.0.1:9000",
        "http://127.0.0.1:9000/prefix",
        "not a url",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_assetpool"))
            .args(["serve", "--database", &database, "--listen", "127.0.0.1:0"])
            .args(["--upstream", upstream])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{upstream} was accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("upstream"), "{upstream}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
