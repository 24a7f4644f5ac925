//! Reverse-proxy mode in process: `serve --upstream` with the test's upstream,
//! the same scenarios as behind nginx, plus what only the proxy decides
//! (own routes stay assetpool's, streaming outlives the request time limit).

use crate::helpers::{Backend, TestApp};
use crate::scenarios::{self, dead_address, logged_in, start_upstream};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

async fn proxy_before(upstream: SocketAddr) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.upstream = Some(format!("http://{upstream}").parse().unwrap());
        settings.upstream_timeout = Duration::from_secs(1);
        settings.request_timeout = Duration::from_secs(1);
    })
    .await
}

#[tokio::test]
async fn accepted_requests_reach_the_upstream_with_identity() {
    let app = proxy_before(start_upstream().await).await;
    scenarios::accepted_request_reaches_upstream(&app, &app.address).await;
    scenarios::large_bodies_pass(&app, &app.address, 20 * 1024 * 1024).await;
    scenarios::websocket_passes_after_the_check(&app, &app.address).await;
}

#[tokio::test]
async fn refusals_reach_the_client() {
    let app = proxy_before(start_upstream().await).await;
    scenarios::refusals_reach_the_client(&app, &app.address).await;
}

#[tokio::test]
async fn upstream_down_and_slow() {
    let app = proxy_before(dead_address()).await;
    scenarios::upstream_down(&app, &app.address).await;
    let app = proxy_before(start_upstream().await).await;
    scenarios::upstream_slow(&app, &app.address).await;
}

#[tokio::test]
async fn own_routes_stay_assetpools() {
    let app = proxy_before(start_upstream().await).await;
    let (key, token) = logged_in(&app).await;
    let resource = app.resource(&key.key, &token).await;
    assert_eq!(resource.status(), 200);
    let body: Value = resource.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");
    for path in ["/healthz", "/openapi.json", "/.well-known/jwks.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // Unknown paths under assetpool's prefixes are never forwarded, even when accepted.
    for path in [
        "/api/keys/key_x",
        "/admin/nothing-here",
        "/oauth/other",
        "/api/authentication/other",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }
    // Any method, and under a path suffix as Envoy's ext_authz asks.
    for path in ["/auth/verify", "/auth/verify/v2/things"] {
        let verify = app
            .client
            .delete(app.url(path))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(verify.status(), 200, "{path}");
        let headers = verify.headers();
        assert_eq!(headers["x-assetpool-user-email"], "alice@example.com");
        assert_eq!(headers["x-assetpool-environment"], "production");
        assert_eq!(headers["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn a_streaming_answer_outlives_the_request_time_limit() {
    // 20 chunks, 100 ms apart: 2 s, twice the request (and upstream) timeout.
    let app = proxy_before(start_upstream().await).await;
    let (key, token) = logged_in(&app).await;
    let response = app
        .client
        .get(app.url("/drip/20"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("cache-control").is_none());
    assert_eq!(response.text().await.unwrap(), "drip\n".repeat(20));
}

/// The console's cookies stay between the browser and assetpool: the
/// upstream neither receives them nor sets them.
#[tokio::test]
async fn the_consoles_cookies_neither_reach_nor_come_from_the_upstream() {
    let app = proxy_before(start_upstream().await).await;
    let (key, token) = logged_in(&app).await;
    let get = |path: &str| {
        app.client
            .get(app.url(path))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
    };
    let response = get("/cookies").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let set: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set, ["upstream_session=u1; Path=/; HttpOnly"]);

    let echoed: Value = get("/echo")
        .header(
            "cookie",
            "upstream_session=u1; __Host-assetpool_console=apc_secret; assetpool_console_sign_in=t",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        echoed["headers"]["cookie"],
        serde_json::json!(["upstream_session=u1"])
    );
}
