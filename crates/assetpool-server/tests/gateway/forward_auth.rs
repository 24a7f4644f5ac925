//! Forward auth for real: nginx with docs/gateway/nginx-auth-request.conf
//! (ports, paths and the read timeout rewritten) asks `/auth/verify` of an
//! assetpool server about each request to the test's upstream.

use crate::helpers::{Backend, TestApp};
use crate::nginx::{nginx_available, start_nginx, Nginx};
use crate::scenarios::{self, dead_address, start_upstream};
use crate::upgrades;
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
