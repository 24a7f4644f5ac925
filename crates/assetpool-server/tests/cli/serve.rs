//! `assetpool serve` driven together with the admin commands on the same database:
//! the CLI's changes reach the running server within one second.

use crate::helpers::{
    assert_clean_failure, assert_resource_401, assert_resource_ok, client, login, login_ok,
    time_until_401, Db, Server, PASSWORD,
};
use std::time::Duration;

const EMAIL: &str = "alice@example.com";
const ONE_SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn keys_and_users_made_by_the_cli_work_on_the_running_server() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert!(
        !server.url.ends_with(":0"),
        "the printed address is not the bound one"
    );
    // Created while the server runs.
    let key = db.create_key("shop", "prod");
    db.create_user("Alice@Example.com", PASSWORD);

    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(tokens.body["expiresIn"], 86400);
    assert_eq!(tokens.body["tokenType"], "Bearer");
    let body = assert_resource_ok(&server, &key.key, &tokens.access).await;
    assert_eq!(body["user"]["email"], EMAIL);
    assert_eq!(body["apiKey"]["id"], key.id.as_str());
    assert_eq!(body["apiKey"]["name"], "shop");
    assert_eq!(body["apiKey"]["application"], key.application.as_str());
    assert_eq!(body["apiKey"]["environment"], "production");

    // A development key on a production server.
    let dev = db.create_key("dev", "dev");
    let (status, body) = login(&server, &dev.key, EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("wrong_environment"))
    );
    // Wrong password.
    let (status, body) = login(&server, &key.key, EMAIL, "not the password at all").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );

    server.assert_no_secrets(&[
        &key.key,
        &dev.key,
        PASSWORD,
        "not the password at all",
        &tokens.access,
        &tokens.refresh,
    ]);
}

#[tokio::test]
async fn keys_revoke_reaches_the_server_within_one_second() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    let other = db.create_key("other", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    let other_tokens = login_ok(&server, &other.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;

    db.ok(&["keys", "revoke", &key.id, "--reason", "test"]);
    let took = time_until_401(&server, &key.key, &tokens.access, "api_key_revoked").await;
    assert!(took < ONE_SECOND, "key revocation took {took:?}");
    let (status, body) = login(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("api_key_revoked"))
    );
    // Another application's key is untouched.
    assert_resource_ok(&server, &other.key, &other_tokens.access).await;

    server.assert_no_secrets(&[
        &key.key,
        &other.key,
        PASSWORD,
        &tokens.access,
        &tokens.refresh,
        &other_tokens.access,
        &other_tokens.refresh,
    ]);
}

#[tokio::test]
async fn users_disable_reaches_the_server_within_one_second() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    db.create_user("bob@example.com", PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    let bob = login_ok(&server, &key.key, "bob@example.com", PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;

    db.ok(&["users", "disable", EMAIL]);
    let took = time_until_401(&server, &key.key, &tokens.access, "token_revoked").await;
    assert!(took < ONE_SECOND, "disabling the user took {took:?}");
    let (status, body) = login(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    // Other users keep their sessions.
    assert_resource_ok(&server, &key.key, &bob.access).await;

    // Enabling lets the user log in again; the old session stays revoked.
    db.ok(&["users", "enable", EMAIL]);
    let fresh = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &fresh.access).await;
    assert_resource_401(&server, &key.key, &tokens.access, "token_revoked").await;

    server.assert_no_secrets(&[
        &key.key,
        PASSWORD,
        &tokens.access,
        &tokens.refresh,
        &bob.access,
        &fresh.access,
        &fresh.refresh,
    ]);
}

#[tokio::test]
async fn users_set_password_reaches_the_server_within_one_second() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;

    let new_password = "a completely different passphrase 9";
    let output = db.run_stdin(
        &["users", "set-password", EMAIL, "--password-stdin"],
        &format!("{new_password}\n"),
    );
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    let took = time_until_401(&server, &key.key, &tokens.access, "token_revoked").await;
    assert!(took < ONE_SECOND, "changing the password took {took:?}");

    let (status, body) = login(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let fresh = login_ok(&server, &key.key, EMAIL, new_password).await;
    assert_resource_ok(&server, &key.key, &fresh.access).await;

    server.assert_no_secrets(&[
        &key.key,
        PASSWORD,
        new_password,
        &tokens.access,
        &tokens.refresh,
        &fresh.access,
        &fresh.refresh,
    ]);
}

#[tokio::test]
async fn verbose_logs_carry_no_secret() {
    let db = Db::new();
    let server = Server::start_with_env(&db, &["--log-format", "json"], &[("RUST_LOG", "debug")]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;
    let (status, _) = login(&server, &key.key, EMAIL, "wrong password, long enough").await;
    assert_eq!(status, 401);
    let refreshed = client()
        .post(server.at("/api/authentication/refresh"))
        .header("x-api-key", &key.key)
        .json(&serde_json::json!({"refreshToken": tokens.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status().as_u16(), 200);
    let refreshed: serde_json::Value = refreshed.json().await.unwrap();
    let new_access = refreshed["accessToken"].as_str().unwrap();
    let new_refresh = refreshed["refreshToken"].as_str().unwrap();
    assert_resource_ok(&server, &key.key, new_access).await;
    // A token in the query string is ignored, and the URL is not logged with it.
    let response = client()
        .get(server.at(&format!("/v1/resource?token={}", tokens.access)))
        .header("x-api-key", &key.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(!server.stderr().is_empty(), "no log at all at debug level");
    server.assert_no_secrets(&[
        &key.key,
        PASSWORD,
        "wrong password, long enough",
        &tokens.access,
        &tokens.refresh,
        new_access,
        new_refresh,
    ]);
}

/// `--forwarded-header` (flag, environment, config file) chooses the one
/// header read from trusted proxies; a chain of it that names no client is
/// 400, the other header is not read at all; a bad value stops the start.
#[tokio::test]
async fn the_forwarded_header_comes_from_flag_environment_or_config_file() {
    let db = Db::new();
    let config = db.path().join("proxy.toml");
    std::fs::write(&config, "forwarded-header = \"forwarded\"\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let status = |server: &Server, header: &'static str, value: &'static str| {
        let request = client().get(server.at("/healthz")).header(header, value);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let flag = Server::start(
        &db,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--forwarded-header",
            "forwarded",
        ],
    );
    let environment = Server::start_with_env(
        &db,
        &["--trusted-proxy", "127.0.0.1"],
        &[("ASSETPOOL_FORWARDED_HEADER", "Forwarded")],
    );
    let file = Server::start(&db, &["--trusted-proxy", "127.0.0.1", "--config", &config]);
    for server in [&flag, &environment, &file] {
        assert_eq!(status(server, "forwarded", "for=_hidden").await, 400);
        assert_eq!(status(server, "forwarded", "for=203.0.113.9").await, 200);
        assert_eq!(status(server, "x-forwarded-for", "garbage").await, 200);
    }
    let default = Server::start(&db, &["--trusted-proxy", "127.0.0.1"]);
    assert_eq!(status(&default, "x-forwarded-for", "garbage").await, 400);
    assert_eq!(status(&default, "forwarded", "for=_hidden").await, 200);

    let output = db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--forwarded-header",
        "x-real-ip",
    ]);
    let line = assert_clean_failure(&output);
    assert!(line.contains("--forwarded-header"), "{line}");
}
