//! The deployment guide's nginx configuration, exercised for real: nginx in
//! front of three servers sharing one PostgreSQL database.
//!
//! Needs nginx and PostgreSQL; skipped (and said so) without them, unless
//! ASSETPOOL_REQUIRE_NGINX=1 / ASSETPOOL_REQUIRE_POSTGRES=1 make that a failure.

use crate::helpers::{Backend, Storage, TestApp, PASSWORD};
use crate::nginx::{self, nginx_available, Nginx};
use assetpool_core::Environment;
use serde_json::{json, Value};
use std::time::Duration;

const CONFIG: &str = include_str!("../../../../docs/deployment/nginx.conf");

/// Starts nginx with the guide's configuration, pointed at `nodes`.
async fn start_nginx(nodes: &[&TestApp]) -> Nginx {
    let mut config = CONFIG.to_owned();
    for (index, node) in nodes.iter().enumerate() {
        let address = node.address.trim_start_matches("http://");
        config = config.replace(&format!("127.0.0.1:808{}", index + 1), address);
    }
    nginx::start_nginx(&config, "listen 8080;").await
}

#[tokio::test]
async fn three_nodes_behind_nginx() {
    if !nginx_available("the nginx deployment test") {
        return;
    }
    let Some(_) = Backend::postgres("three_nodes_behind_nginx").await else {
        return;
    };
    let schema = assetpool_store_tests::postgres::fresh_schema("three_nodes_behind_nginx")
        .await
        .unwrap();
    let url = schema.url.clone();
    let first = TestApp::start(url.clone(), Storage::Postgres(schema), |_| {}).await;
    let others = [
        TestApp::start(url.clone(), Storage::None, |_| {}).await,
        TestApp::start(url, Storage::None, |_| {}).await,
    ];
    let nginx = start_nginx(&[&first, &others[0], &others[1]]).await;
    let key = first.create_key(Environment::Production).await;
    first.create_user("alice@example.com").await;
    let client = reqwest::Client::new();

    let login = client
        .post(format!("{}/api/authentication/login", nginx.url))
        .header("x-api-key", &key.key)
        .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.unwrap();
    let token = tokens["accessToken"].as_str().unwrap();
    // Round robin: these reach every node; each accepts the token.
    for _ in 0..6 {
        let response = client
            .get(format!("{}/v1/resource", nginx.url))
            .header("x-api-key", &key.key)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"));
    }
    let logout = client
        .post(format!("{}/api/authentication/logout", nginx.url))
        .header("x-api-key", &key.key)
        .header("x-api-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    // Within a second, no node behind nginx accepts the token any more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..6 {
        let response = client
            .get(format!("{}/v1/resource", nginx.url))
            .header("x-api-key", &key.key)
            .header("x-api-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "token_revoked");
    }
    // nginx refuses oversized bodies before they reach a node.
    let large = client
        .post(format!("{}/api/authentication/login", nginx.url))
        .header("x-api-key", &key.key)
        .header("content-type", "application/json")
        .body("x".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);
}
