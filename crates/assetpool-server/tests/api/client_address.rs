//! The client address behind a trusted proxy: login throttling counts the
//! address the proxy forwards, and ignores the header from any other peer.

use crate::helpers::{assert_error, Backend, TestApp, PASSWORD};
use assetpool_core::Environment;
use serde_json::json;

const EMAIL: &str = "alice@example.com";
const ADDRESS_A: &str = "203.0.113.10";
const ADDRESS_B: &str = "203.0.113.20";

async fn login_from(
    app: &TestApp,
    key: &str,
    header: (&str, String),
    password: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/authentication/login"))
        .header("x-api-key", key)
        .header(header.0, header.1)
        .json(&json!({"username": EMAIL, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Five failures for A (the per-address allowance), then: A is throttled
/// whatever the password; B, from the same socket address, is not.
#[tokio::test]
async fn login_throttling_follows_the_address_a_trusted_proxy_forwards() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let key = app.create_key(Environment::Production).await;
    app.create_user(EMAIL).await;
    for _ in 0..5 {
        let response = login_from(
            &app,
            &key.key,
            ("x-forwarded-for", format!("198.51.100.1, {ADDRESS_A}")),
            "wrong password!!",
        )
        .await;
        assert_error(response, 401, "invalid_credentials").await;
    }
    // A spoofed left-most entry does not help A either.
    let response = login_from(
        &app,
        &key.key,
        ("x-forwarded-for", format!("{ADDRESS_B}, {ADDRESS_A}")),
        PASSWORD,
    )
    .await;
    assert_error(response, 429, "too_many_attempts").await;
    // The same address through the standard header is the same client.
    let response = login_from(
        &app,
        &key.key,
        ("forwarded", format!("for=\"{ADDRESS_A}:4711\";proto=https")),
        PASSWORD,
    )
    .await;
    assert_error(response, 429, "too_many_attempts").await;
    // B, through the same proxy, is judged on its own.
    let response = login_from(
        &app,
        &key.key,
        ("x-forwarded-for", ADDRESS_B.to_owned()),
        "wrong password!!",
    )
    .await;
    assert_error(response, 401, "invalid_credentials").await;
    let response = login_from(
        &app,
        &key.key,
        ("forwarded", format!("for={ADDRESS_B}")),
        PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 200);
}

/// Without a trusted proxy the socket address counts: every request below
/// comes from 127.0.0.1 whatever the header says.
#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let key = app.create_key(Environment::Production).await;
    app.create_user(EMAIL).await;
    for _ in 0..5 {
        let response = login_from(
            &app,
            &key.key,
            ("x-forwarded-for", ADDRESS_A.to_owned()),
            "wrong password!!",
        )
        .await;
        assert_error(response, 401, "invalid_credentials").await;
    }
    for header in [
        ("x-forwarded-for", ADDRESS_B.to_owned()),
        ("forwarded", format!("for={ADDRESS_B}")),
    ] {
        let response = login_from(&app, &key.key, header, PASSWORD).await;
        assert_error(response, 429, "too_many_attempts").await;
    }
}
