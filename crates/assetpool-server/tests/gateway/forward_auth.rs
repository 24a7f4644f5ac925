//! Forward auth for real: nginx with docs/gateway/nginx-auth-request.conf
//! (ports, paths and the read timeout rewritten) asks `/auth/verify` of an
//! assetpool server about each request to the test's upstream.

use crate::helpers::{Backend, TestApp};
use crate::nginx::{nginx_available, start_nginx, Nginx};
use crate::scenarios::{self, dead_address, start_upstream};
use crate::upgrades;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;

const CONFIG: &str = include_str!("../../../../docs/gateway/nginx-auth-request.conf");

/// nginx with the documented configuration between the client, `app` and `upstream`.
async fn nginx_before(app: &TestApp, upstream: SocketAddr) -> Nginx {
    let config = CONFIG
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server {};", app.address.trim_start_matches("http://")),
        )
        .replace("server 127.0.0.1:9000;", &format!("server {upstream};"))
        .replace("proxy_read_timeout 30s;", "proxy_read_timeout 1s;");
    start_nginx(&config, "listen 8000;").await
}

#[tokio::test]
async fn nginx_auth_request_lets_accepted_requests_through_with_identity() {
    if !nginx_available("the nginx auth_request test") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let nginx = nginx_before(&app, start_upstream().await).await;
    scenarios::accepted_request_reaches_upstream(&app, &nginx.url).await;
    scenarios::large_bodies_pass(&app, &nginx.url, 20 * 1024 * 1024).await;
    scenarios::websocket_passes_after_the_check(&app, &nginx.url).await;
}

#[tokio::test]
async fn nginx_auth_request_passes_refusals_back() {
    if !nginx_available("the nginx auth_request test") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let nginx = nginx_before(&app, start_upstream().await).await;
    scenarios::refusals_reach_the_client(&app, &nginx.url).await;
}

#[tokio::test]
async fn nginx_auth_request_upstream_down_and_slow() {
    if !nginx_available("the nginx auth_request test") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let down = nginx_before(&app, dead_address()).await;
    scenarios::upstream_down(&app, &down.url).await;
    let slow = nginx_before(&app, start_upstream().await).await;
    scenarios::upstream_slow(&app, &slow.url).await;
}

#[tokio::test]
async fn nginx_passes_only_websocket_upgrades() {
    if !nginx_available("the nginx auth_request test") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let upstream = upgrades::start_raw_upstream(upgrades::Switch::AsAsked).await;
    let nginx = nginx_before(&app, upstream).await;
    let (key, token) = scenarios::logged_in(&app).await;
    upgrades::only_websocket_is_tunnelled(&nginx.url, (&key.key, &token)).await;
}

/// The documented configuration asks `/auth/verify?scope=` with the scopes
/// of each route: reading orders needs `orders:read`, changing them
/// `orders:write`; the refusal reaches the client as assetpool wrote it, and
/// accepted requests carry `x-assetpool-scopes` (the client's own replaced).
#[tokio::test]
async fn nginx_asks_for_the_scopes_of_each_route() {
    if !nginx_available("the nginx auth_request test") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let nginx = nginx_before(&app, start_upstream().await).await;
    let reader = app
        .create_scoped_key(assetpool_core::Environment::Production, Some("orders:read"))
        .await;
    let (unrestricted, unrestricted_token) = scenarios::logged_in(&app).await;
    let body: Value = app
        .login(&reader.key, "alice@example.com", crate::helpers::PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = body["accessToken"].as_str().unwrap().to_owned();
    for path in [
        "/orders",
        "/orders/7?page=2",
        "//orders/7",
        "/x/../orders/7",
    ] {
        let response = send(&nginx, Method::GET, path, &reader.key, &token).await;
        assert_eq!(response.status(), 200, "{path}");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(
            echo["headers"]["x-assetpool-scopes"],
            json!(["orders:read"]),
            "{path}"
        );
    }
    for path in ["/orders", "/%6Frders/7"] {
        let refused = send(&nginx, Method::POST, path, &reader.key, &token).await;
        assert_refused_for_scope(refused, "orders:write").await;
    }
    // Other paths need nothing; an unrestricted token meets every requirement
    // and arrives without x-assetpool-scopes.
    let other = send(
        &nginx,
        Method::POST,
        "/v2/things?scope=admin",
        &reader.key,
        &token,
    )
    .await;
    assert_eq!(other.status(), 200);
    let response = send(
        &nginx,
        Method::POST,
        "/orders",
        &unrestricted.key,
        &unrestricted_token,
    )
    .await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert!(
        echo["headers"].get("x-assetpool-scopes").is_none(),
        "{echo}"
    );
    // Credentials still come first.
    let missing = reqwest::Client::new()
        .post(format!("{}/orders", nginx.url))
        .header("x-api-key", &reader.key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
}

/// `method path` through nginx with `key` and `token`, and a client-sent
/// `x-assetpool-scopes` that must never reach the upstream.
async fn send(nginx: &Nginx, method: Method, path: &str, key: &str, token: &str) -> Response {
    reqwest::Client::new()
        .request(method, format!("{}{path}", nginx.url))
        .header("x-api-key", key)
        .header("x-api-token", token)
        .header("x-assetpool-scopes", "admin")
        .send()
        .await
        .unwrap()
}

async fn assert_refused_for_scope(refused: Response, required: &str) {
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["www-authenticate"],
        format!(r#"Bearer realm="assetpool", error="insufficient_scope", scope="{required}""#)
    );
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope", "{body}");
}
