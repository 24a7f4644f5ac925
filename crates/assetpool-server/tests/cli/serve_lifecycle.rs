//! `assetpool serve` over time: key rotation grace, token expiry, kill -9 and
//! restart, SIGTERM.

use crate::helpers::{
    assert_resource_401, assert_resource_ok, client, get_json, login, login_ok, Db, Key, Server,
    PASSWORD,
};
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";

#[tokio::test]
async fn rotated_key_works_for_its_grace_period_then_expires() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let old = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &old.key, EMAIL, PASSWORD).await;

    let new = Key::from_json(&db.json(&["keys", "rotate", &old.id, "--grace", "1", "--json"]));
    let rotated_at = Instant::now();
    assert_eq!(new.application, old.application);
    // Within the grace period both keys work, with the same session.
    assert_resource_ok(&server, &old.key, &tokens.access).await;
    assert!(
        rotated_at.elapsed() < Duration::from_millis(900),
        "too slow to check the grace period"
    );
    assert_resource_ok(&server, &new.key, &tokens.access).await;

    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(rotated_at.elapsed())).await;
    assert_resource_401(&server, &old.key, &tokens.access, "api_key_expired").await;
    let (status, body) = login(&server, &old.key, EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("api_key_expired"))
    );
    // The successor works, for the old session and for new logins.
    assert_resource_ok(&server, &new.key, &tokens.access).await;
    let fresh = login_ok(&server, &new.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &new.key, &fresh.access).await;
    assert_eq!(db.show_key(&old.id)["status"], "expired");

    server.assert_no_secrets(&[
        &old.key,
        &new.key,
        PASSWORD,
        &tokens.access,
        &tokens.refresh,
        &fresh.access,
        &fresh.refresh,
    ]);
}

#[tokio::test]
async fn access_tokens_expire_after_the_token_ttl() {
    let db = Db::new();
    let server = Server::start(&db, &["--token-ttl", "2"]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    let issued_at = Instant::now();
    assert_eq!(tokens.body["expiresIn"], 2);
    assert_resource_ok(&server, &key.key, &tokens.access).await;

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(issued_at.elapsed())).await;
    assert_resource_401(&server, &key.key, &tokens.access, "token_expired").await;
    let response = client()
        .get(server.at("/v1/resource"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &tokens.access)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        challenge.contains("invalid_token"),
        "WWW-Authenticate: {challenge:?}"
    );

    server.assert_no_secrets(&[&key.key, PASSWORD, &tokens.access, &tokens.refresh]);
}

async fn issuer(server: &Server) -> String {
    let metadata = get_json(server, "/.well-known/oauth-authorization-server").await;
    metadata["issuer"].as_str().expect("issuer").to_owned()
}

#[tokio::test]
async fn state_survives_kill_9_and_restart() {
    let db = Db::new();
    let mut first = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let kept = login_ok(&first, &key.key, EMAIL, PASSWORD).await;
    let ended = login_ok(&first, &key.key, EMAIL, PASSWORD).await;
    let response = client()
        .post(first.at("/api/authentication/logout"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &ended.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_resource_401(&first, &key.key, &ended.access, "token_revoked").await;
    let first_issuer = issuer(&first).await;
    assert_eq!(
        first_issuer, first.url,
        "the issuer is not the first start's address"
    );
    let first_log = first.stderr();
    first.kill();

    let second = Server::start(&db, &[]);
    assert_eq!(
        issuer(&second).await,
        first_issuer,
        "the issuer changed on restart"
    );
    let again = login_ok(&second, &key.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&second, &key.key, &again.access).await;
    // A token issued before the kill still verifies (the signing key was kept) ...
    assert_resource_ok(&second, &key.key, &kept.access).await;
    // ... and the session ended before the kill stays ended.
    assert_resource_401(&second, &key.key, &ended.access, "token_revoked").await;
    let refreshed = client()
        .post(second.at("/api/authentication/refresh"))
        .header("x-api-key", &key.key)
        .json(&serde_json::json!({"refreshToken": ended.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status().as_u16(),
        401,
        "a logged-out refresh token works"
    );

    let secrets = [
        key.key.as_str(),
        PASSWORD,
        &kept.access,
        &kept.refresh,
        &ended.access,
        &ended.refresh,
        &again.access,
        &again.refresh,
    ];
    for secret in secrets {
        assert!(
            !first_log.contains(secret),
            "a secret on the first server's stderr"
        );
    }
    second.assert_no_secrets(&secrets);
}

#[tokio::test]
async fn sigterm_stops_the_server_with_status_0() {
    let db = Db::new();
    let mut server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;

    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    // It no longer accepts connections.
    let refused = client().get(server.at("/healthz")).send().await;
    assert!(refused.is_err(), "still answering after exit");
    // Buffered key usage was flushed on the way out.
    let shown = db.show_key(&key.id);
    assert!(
        shown["lastUsedAt"].is_string(),
        "lastUsedAt not recorded after a graceful stop: {shown}"
    );
    let log = server.stderr();
    assert!(!log.contains("panicked"), "{log}");
    server.assert_no_secrets(&[&key.key, PASSWORD, &tokens.access, &tokens.refresh]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_login_finish() {
    let db = Db::new();
    let mut server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    // A slow password hash (many Argon2 passes) keeps the login in flight.
    let config = db.path().join("slow-hash.toml");
    std::fs::write(&config, "argon2-iterations = 40\n").unwrap();
    let mut create = db.cmd(&["users", "create", "--email", EMAIL, "--password-stdin"]);
    create.arg("--config").arg(&config);
    let created = crate::helpers::output(create, Some(&format!("{PASSWORD}\n")));
    assert!(
        created.status.success(),
        "{}",
        crate::helpers::stderr(&created)
    );
    let url = server.url.clone();
    let api_key = key.key.clone();
    let in_flight = tokio::spawn(async move {
        client()
            .post(format!("{url}/api/authentication/login"))
            .header("x-api-key", api_key)
            .json(&serde_json::json!({"username": EMAIL, "password": PASSWORD}))
            .send()
            .await
            .map(|response| response.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !in_flight.is_finished(),
        "the login was not slow enough to be in flight"
    );
    let status = tokio::task::block_in_place(|| server.terminate());
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.ok(), Some(200), "the in-flight login was cut off");
}

/// With `--shutdown-delay`, SIGTERM first turns `/readyz` to 503 while
/// requests are still served (so a load balancer takes the node out), then
/// the server stops with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_to_503_during_the_shutdown_delay() {
    let db = Db::new();
    let mut server = Server::start(&db, &["--shutdown-delay", "3"]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    let body = get_json(&server, "/readyz").await;
    assert_eq!(body["status"], "ready");

    crate::helpers::send_signal(server.pid(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        // A fresh client each time: a new connection must still be accepted.
        let response = client().get(server.at("/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        if status == 503 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["status"], "draining", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still answers {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still serving while draining.
    assert_resource_ok(&server, &key.key, &tokens.access).await;
    get_json(&server, "/healthz").await;

    let exit = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15)));
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM: {exit}");
    assert!(client().get(server.at("/healthz")).send().await.is_err());
}

/// A connection that never completes its request head would hold the
/// shutdown until the header timeout (here 120 s); `--shutdown-timeout`
/// bounds the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_timeout_bounds_the_wait_for_open_connections() {
    use tokio::io::AsyncWriteExt as _;
    let db = Db::new();
    let mut server = Server::start(
        &db,
        &["--header-read-timeout", "120", "--shutdown-timeout", "1"],
    );
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // The server has read the partial head.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // `terminate` allows 15 s: far less than the header timeout.
    let status = tokio::task::block_in_place(|| server.terminate());
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    let log = server.stderr();
    assert!(
        log.contains("still open at the shutdown timeout"),
        "the cut connection is not logged: {log}"
    );
    drop(stalled);
}
