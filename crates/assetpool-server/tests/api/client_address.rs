//! The client address behind a trusted proxy: login throttling counts the
//! address the proxy forwards, reads only the configured forwarding header,
//! refuses a chain that names no client, and ignores the headers from any
//! other peer.

use crate::backend_tests;
use crate::helpers::{assert_error, Backend, TestApp, PASSWORD};
use assetpool_core::Environment;
use assetpool_server::extract::client_address::ForwardedHeader;
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
        ("x-forwarded-for", ADDRESS_B.to_owned()),
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

/// Five failures of `key`'s user from `header`, then the right password
/// from `again`: the answer says whether both were the same client.
async fn throttled_after_failures(
    app: &TestApp,
    key: &str,
    header: (&str, String),
    again: (&str, String),
) -> bool {
    for _ in 0..5 {
        let response = login_from(app, key, header.clone(), "wrong password!!").await;
        assert_error(response, 401, "invalid_credentials").await;
    }
    let response = login_from(app, key, again, PASSWORD).await;
    match response.status().as_u16() {
        429 => true,
        200 => false,
        other => panic!("unexpected answer {other}"),
    }
}

backend_tests! {
    /// A trusted proxy's header that names no client is refused, on every
    /// route, instead of counting every such request as the proxy's own
    /// address (which would share one throttle, one usage row and one alert
    /// among all clients).
    async fn a_malformed_chain_from_a_trusted_proxy_is_refused(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        for chain in ["garbage", "unknown", "", "203.0.113.10, garbage", "203.0.113.10,"] {
            let response =
                login_from(&app, &key.key, ("x-forwarded-for", chain.to_owned()), PASSWORD).await;
            let error = assert_error(response, 400, "invalid_request").await;
            assert!(!error.to_string().contains("garbage"), "{error}");
            let response = app
                .client
                .get(app.url("/v1/resource"))
                .header("x-forwarded-for", chain)
                .send()
                .await
                .unwrap();
            assert_error(response, 400, "invalid_request").await;
        }
        // Nothing was counted against the proxy's address: a login without
        // the header (the proxy itself) still works.
        let response = app.login(&key.key, EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200);
    }

    /// nginx appends the real address to what the client sent: garbage the
    /// client put in front changes nothing, its failures count for its own
    /// address.
    async fn what_a_client_puts_in_front_of_its_address_is_ignored(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        let throttled = throttled_after_failures(
            &app,
            &key.key,
            ("x-forwarded-for", format!("garbage, unknown, {ADDRESS_A}")),
            ("x-forwarded-for", ADDRESS_A.to_owned()),
        )
        .await;
        assert!(throttled, "the failures were not counted for {ADDRESS_A}");
        let response = login_from(
            &app,
            &key.key,
            ("x-forwarded-for", ADDRESS_B.to_owned()),
            PASSWORD,
        )
        .await;
        assert_eq!(response.status(), 200);
    }

    /// Only the configured header is read from a trusted proxy: a client
    /// cannot name itself through the header its proxy does not set.
    async fn only_the_configured_forwarding_header_is_read(backend) {
        // X-Forwarded-For (the default): a client-sent Forwarded is ignored.
        let app = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        let throttled = throttled_after_failures(
            &app,
            &key.key,
            ("x-forwarded-for", ADDRESS_A.to_owned()),
            ("forwarded", format!("for={ADDRESS_A}")),
        )
        .await;
        assert!(!throttled, "Forwarded was read although X-Forwarded-For is configured");

        // Forwarded (RFC 7239): a client-sent X-Forwarded-For is ignored.
        let app = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            settings.forwarded_header = ForwardedHeader::Forwarded;
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        let throttled = throttled_after_failures(
            &app,
            &key.key,
            ("forwarded", format!("for=unknown, for=\"{ADDRESS_A}:4711\";proto=https")),
            ("forwarded", format!("for={ADDRESS_A}")),
        )
        .await;
        assert!(throttled, "the failures were not counted for {ADDRESS_A}");
        let response = app
            .client
            .post(app.url("/api/authentication/login"))
            .header("x-api-key", &key.key)
            .header("forwarded", format!("for={ADDRESS_B}"))
            .header("x-forwarded-for", ADDRESS_A)
            .json(&json!({"username": EMAIL, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = login_from(&app, &key.key, ("forwarded", "for=_hidden".to_owned()), PASSWORD).await;
        assert_error(response, 400, "invalid_request").await;
    }
}
