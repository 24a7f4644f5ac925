//! WebSocket tunnels through the real `assetpool` binary: a key revoked by
//! the command line on the same database and the token's `exp` close them,
//! `--max-connections` counts them, and the tunnel limits come from flags,
//! environment and config file.

use crate::binary::{assetpool, login, seed_with_id, serve};
use crate::scenarios::start_upstream_counting;
use crate::tunnels::{assert_echoes, closed_within, open_tunnel};
use base64::Engine as _;
use serde_json::Value;
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
    let took = closed_within(&mut socket, Duration::from_secs(1)).await;
    eprintln!("binary: tunnel closed {took:?} after `keys revoke` exited");
    let started = std::time::Instant::now();
    while open.count() != 0 {
        assert!(started.elapsed() < Duration::from_secs(1));
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
    let (_server, url) = serve(
        &database,
        &["--upstream", &upstream, "--token-ttl", "3"],
        &[],
    );
    let token = login(&url, &key).await;
    let expires = Duration::from_secs(expiry(&token));
    let (mut socket, _) = open_tunnel(&url, &key, &token).await;
    assert_echoes(&mut socket, "before expiry").await;
    let left = expires.saturating_sub(unix_now());
    closed_within(&mut socket, left + Duration::from_secs(1)).await;
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
        &["--upstream", &upstream, "--max-connections", "2"],
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
        closed_within(&mut socket, Duration::from_secs(3)).await;
    }
    let help = assetpool(&database, &["serve", "--help"], None);
    for option in [
        "--tunnel-idle-timeout",
        "--tunnel-max-lifetime",
        "ASSETPOOL_TUNNEL_IDLE_TIMEOUT",
        "ASSETPOOL_TUNNEL_MAX_LIFETIME",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}
