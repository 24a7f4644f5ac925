//! WebSocket tunnels through the real `assetpool` binary: a key revoked by
//! the command line on the same database and the token's `exp` close them,
//! `--max-connections` counts them, and the tunnel limits and caps come from
//! flags, environment and config file.

use crate::binary::{assetpool, login, seed_with_id, serve};
use crate::scenarios::start_upstream_counting;
use crate::tunnel_limits::assert_refused;
use crate::tunnels::{assert_echoes, closed_within, open_tunnel, REVOCATION_LIMIT};
use base64::Engine as _;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Flags and environment of one `serve`.
type Setup<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

fn database(directory: &tempfile::TempDir) -> String {
    format!("sqlite://{}/gateway.db", directory.path().display())
}

/// The `exp` claim of an access token.
fn expiry(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["exp"].as_u64().unwrap()
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[tokio::test]
async fn a_key_revoked_by_the_command_line_closes_its_tunnel() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(&directory);
    let (key, key_id) = seed_with_id(&database);
    let (upstream, open) = start_upstream_counting().await;
    let upstream = format!("http://{upstream}");
    let (_server, url) = serve(&database, &["--upstream", &upstream], &[]);
    let token = login(&url, &key).await;
    let (mut socket, _) = open_tunnel(&url, &key, &token).await;
    assert_echoes(&mut socket, "before").await;
    assetpool(&database, &["keys", "revoke", &key_id], None);
    // The server follows the database's change feed (every 200 ms).
    let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
    eprintln!("binary: tunnel closed {took:?} after `keys revoke` exited");
    let started = std::time::Instant::now();
    while open.count() != 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_tunnel_ends_at_its_tokens_expiry() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(&directory);
    let (key, _) = seed_with_id(&database);
    let (upstream, _open) = start_upstream_counting().await;
    let upstream = format!("http://{upstream}");
    // Long enough to open the tunnel and echo on a loaded machine.
    let (_server, url) = serve(
        &database,
        &["--upstream", &upstream, "--token-ttl", "5"],
        &[],
    );
    let token = login(&url, &key).await;
    let expires = Duration::from_secs(expiry(&token));
    let (mut socket, _) = open_tunnel(&url, &key, &token).await;
    assert_echoes(&mut socket, "before expiry").await;
    let left = expires.saturating_sub(unix_now());
    closed_within(&mut socket, left + REVOCATION_LIMIT).await;
    let closed_at = unix_now();
    eprintln!(
        "binary: tunnel closed {:?} after its token's exp",
        closed_at.saturating_sub(expires)
    );
    assert!(
        closed_at + Duration::from_millis(50) >= expires,
        "closed {:?} before the token expired",
        expires - closed_at
    );
}

#[tokio::test]
async fn max_connections_counts_tunnels_of_the_binary() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(&directory);
    let (key, _) = seed_with_id(&database);
    let (upstream, _open) = start_upstream_counting().await;
    let upstream = format!("http://{upstream}");
    let (_server, url) = serve(
        &database,
        &[
            "--upstream",
            &upstream,
            "--max-connections",
            "2",
            "--max-tunnels",
            "2",
            "--max-tunnels-per-key",
            "2",
        ],
        &[],
    );
    // `login` drops its client, and with it its connection.
    let token = login(&url, &key).await;
    let (mut first, _) = open_tunnel(&url, &key, &token).await;
    let (mut second, _) = open_tunnel(&url, &key, &token).await;
    assert_echoes(&mut first, "one").await;
    assert_echoes(&mut second, "two").await;
    let mut third = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut status = [0_u8; 12];
    let waited =
        tokio::time::timeout(Duration::from_millis(1500), third.read_exact(&mut status)).await;
    assert!(waited.is_err(), "served beyond --max-connections");
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), third.read_exact(&mut status))
        .await
        .expect("served once a tunnel ended")
        .unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
}

#[tokio::test]
async fn tunnel_limits_from_flags_environment_and_config_file() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(&directory);
    let (key, _) = seed_with_id(&database);
    let (upstream, _open) = start_upstream_counting().await;
    let upstream = format!("http://{upstream}");
    let config = directory.path().join("assetpool.toml");
    std::fs::write(
        &config,
        "tunnel-idle-timeout = 1\ntunnel-max-lifetime = 60\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let idle_setups: [Setup; 3] = [
        (&["--tunnel-idle-timeout", "1"], &[]),
        (&[], &[("ASSETPOOL_TUNNEL_IDLE_TIMEOUT", "1")]),
        (&["--config", config], &[]),
    ];
    for (flags, environment) in idle_setups {
        let args = [&["--upstream", upstream.as_str()][..], flags].concat();
        let (_server, url) = serve(&database, &args, environment);
        let token = login(&url, &key).await;
        let (mut socket, _) = open_tunnel(&url, &key, &token).await;
        assert_echoes(&mut socket, "then idle").await;
        closed_within(&mut socket, Duration::from_secs(5)).await;
    }
    let help = assetpool(&database, &["serve", "--help"], None);
    for option in [
        "--tunnel-idle-timeout",
        "--tunnel-max-lifetime",
        "--max-tunnels",
        "--max-tunnels-per-key",
        "ASSETPOOL_TUNNEL_IDLE_TIMEOUT",
        "ASSETPOOL_TUNNEL_MAX_LIFETIME",
        "ASSETPOOL_MAX_TUNNELS",
        "ASSETPOOL_MAX_TUNNELS_PER_KEY",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}

#[tokio::test]
async fn tunnel_caps_from_flags_environment_config_file_and_defaults() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(&directory);
    let (key, _) = seed_with_id(&database);
    let (upstream, _open) = start_upstream_counting().await;
    let upstream = format!("http://{upstream}");
    let server_cap = directory.path().join("server-cap.toml");
    std::fs::write(&server_cap, "max-tunnels = 2\nmax-tunnels-per-key = 5\n").unwrap();
    let key_cap = directory.path().join("key-cap.toml");
    std::fs::write(&key_cap, "max-tunnels-per-key = 2\n").unwrap();
    let (server_cap, key_cap) = (server_cap.to_str().unwrap(), key_cap.to_str().unwrap());
    // Each setup lets this key open two tunnels and refuses the third.
    let setups: [(Setup, u16, &str); 7] = [
        (
            (&["--max-tunnels", "2", "--max-tunnels-per-key", "5"], &[]),
            503,
            "overloaded",
        ),
        (
            (
                &[],
                &[
                    ("ASSETPOOL_MAX_TUNNELS", "2"),
                    ("ASSETPOOL_MAX_TUNNELS_PER_KEY", "5"),
                ],
            ),
            503,
            "overloaded",
        ),
        ((&["--config", server_cap], &[]), 503, "overloaded"),
        ((&["--max-tunnels-per-key", "2"], &[]), 429, "rate_limited"),
        (
            (&[], &[("ASSETPOOL_MAX_TUNNELS_PER_KEY", "2")]),
            429,
            "rate_limited",
        ),
        ((&["--config", key_cap], &[]), 429, "rate_limited"),
        // Defaults: half of --max-connections (10) for the server, a fifth of that per key.
        ((&["--max-connections", "20"], &[]), 429, "rate_limited"),
    ];
    for ((flags, environment), status, code) in setups {
        let args = [&["--upstream", upstream.as_str()][..], flags].concat();
        let (_server, url) = serve(&database, &args, environment);
        let token = login(&url, &key).await;
        let (mut first, _) = open_tunnel(&url, &key, &token).await;
        let (mut second, _) = open_tunnel(&url, &key, &token).await;
        assert_refused(&url, &key, &token, status, code).await;
        assert_echoes(&mut first, "one").await;
        assert_echoes(&mut second, "two").await;
    }
}

#[test]
fn a_tunnel_cap_above_the_connection_cap_is_refused_at_start() {
    let directory = tempfile::tempdir().unwrap();
    let database = database(&directory);
    let config = directory.path().join("zero.toml");
    std::fs::write(&config, "max-tunnels = 0\n").unwrap();
    let config = config.to_str().unwrap();
    let refused: [&[&str]; 3] = [
        &["--max-connections", "10", "--max-tunnels", "11"],
        &["--max-tunnels", "0"],
        &["--config", config],
    ];
    for args in refused {
        let output = Command::new(env!("CARGO_BIN_EXE_assetpool"))
            .args(["serve", "--database", &database, "--listen", "127.0.0.1:0"])
            .args(["--upstream", "http://127.0.0.1:9"])
            .args(args)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("max-tunnels"), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
