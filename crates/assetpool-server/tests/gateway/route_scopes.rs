//! `serve --upstream ... --route-scope 'METHOD /prefix=scopes'` in front of
//! the test's upstream: the longest matching prefix decides what a forwarded
//! request needs (a method beating `*`), no spelling of a path escapes its
//! rule, refusals never reach the upstream, forwarded requests carry the
//! request's scopes in `x-assetpool-scopes` (a client's own replaced), and a
//! WebSocket tunnel closes when its key no longer has its route's scopes.

use crate::backend_tests;
use crate::helpers::{assert_error, Backend, TestApp, TestKey};
use crate::scenarios::start_upstream;
use crate::tunnels::{
    assert_echoes, closed_within, login, open_tunnel, proxy_before, REVOCATION_LIMIT,
};
use assetpool_core::store::ApiKeyUpdate;
use assetpool_core::{Environment, ScopeSet};
use assetpool_server::gateway::route_scopes::RouteScopes;
use reqwest::{Method, Response};
use serde_json::Value;

const ALICE: &str = "alice@example.com";

fn rules(texts: &[&str]) -> RouteScopes {
    RouteScopes::parse(texts).unwrap()
}

async fn send(app: &TestApp, method: Method, path: &str, key: &TestKey, token: &str) -> Response {
    app.client
        .request(method, app.url(path))
        .header("x-api-key", &key.key)
        .header("x-api-token", token)
        .header("x-assetpool-scopes", "admin")
        .header("X_Assetpool_Scopes", "admin")
        .send()
        .await
        .unwrap()
}

/// The headers the upstream received (it echoes them), after a 200.
async fn forwarded(response: Response) -> Value {
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    echo["headers"].clone()
}

async fn assert_insufficient(response: Response, required: &str) {
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(r#"Bearer realm="assetpool", error="insufficient_scope", scope="{required}""#)
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    // assetpool's refusal, not an upstream answer.
    let body = assert_error(response, 403, "insufficient_scope").await;
    assert!(body.get("headers").is_none(), "{body}");
}

#[tokio::test]
async fn the_longest_matching_prefix_decides_what_a_forwarded_request_needs() {
    let upstream = start_upstream().await;
    let app = proxy_before(Backend::Sqlite, upstream, |settings| {
        settings.route_scopes = rules(&[
            "GET /orders=orders:read",
            "* /orders=orders:write",
            "GET /orders/public=",
            "* /reports=reports:read reports:export",
        ]);
    })
    .await;
    app.create_user(ALICE).await;
    let reader = app
        .create_scoped_key(Environment::Production, Some("orders:read reports:read"))
        .await;
    let token = login(&app, &reader, ALICE, crate::helpers::PASSWORD).await;

    for path in [
        "/orders",
        "/orders/7?x=1",
        "/ORDERS/7",
        "/%6Frders/7",
        "//orders",
    ] {
        let headers = forwarded(send(&app, Method::GET, path, &reader, &token).await).await;
        assert_eq!(
            headers["x-assetpool-scopes"],
            serde_json::json!(["orders:read reports:read"]),
            "{path}: {headers}"
        );
        assert!(headers.get("x_assetpool_scopes").is_none(), "{headers}");
    }
    for path in ["/orders", "/%6Frders/7", "/Orders/public/x"] {
        assert_insufficient(
            send(&app, Method::POST, path, &reader, &token).await,
            "orders:write",
        )
        .await;
    }
    assert_insufficient(
        send(&app, Method::DELETE, "/orders/7", &reader, &token).await,
        "orders:write",
    )
    .await;
    // Dot segments after a protected prefix, encoded so that they are not
    // resolved before routing, reach an upstream's /reports handler as they
    // were sent: they need what /reports needs.
    for path in ["/reports/..%2Fother", "/reports/x%5C..%5C..%5Cother"] {
        assert_insufficient(
            send(&app, Method::GET, path, &reader, &token).await,
            "reports:export reports:read",
        )
        .await;
    }
    // A rule naming no scope exempts its prefix for its method.
    forwarded(send(&app, Method::GET, "/orders/public/x", &reader, &token).await).await;
    // Every scope of a rule is needed.
    assert_insufficient(
        send(&app, Method::GET, "/reports/2026", &reader, &token).await,
        "reports:export reports:read",
    )
    .await;
    // Unmatched paths need nothing.
    forwarded(send(&app, Method::POST, "/other", &reader, &token).await).await;
    // Credentials come first.
    let missing = app
        .client
        .post(app.url("/orders"))
        .header("x-api-key", &reader.key)
        .send()
        .await
        .unwrap();
    assert_error(missing, 401, "missing_token").await;

    // A token nothing restricted meets every rule and carries no scopes header.
    let writer = app.create_key(Environment::Production).await;
    let unrestricted = login(&app, &writer, ALICE, crate::helpers::PASSWORD).await;
    let headers =
        forwarded(send(&app, Method::POST, "/orders", &writer, &unrestricted).await).await;
    assert!(headers.get("x-assetpool-scopes").is_none(), "{headers}");
}

backend_tests! {
    /// A tunnel needs its route's scopes for as long as it lives: narrowing
    /// its key's scopes below them closes it within a second, and a new
    /// upgrade is refused with 403 before the upstream sees it.
    async fn a_tunnel_closes_when_its_key_loses_the_routes_scopes(backend) {
        let upstream = start_upstream().await;
        let app = proxy_before(backend, upstream, |settings| {
            settings.route_scopes = rules(&["GET /ws=live"]);
        })
        .await;
        app.create_user(ALICE).await;
        let key = app
            .create_scoped_key(Environment::Production, Some("live chat"))
            .await;
        let token = login(&app, &key, ALICE, crate::helpers::PASSWORD).await;
        let (mut socket, greeting) = open_tunnel(&app.address, &key.key, &token).await;
        assert_eq!(greeting["headers"]["x-assetpool-scopes"], serde_json::json!(["chat live"]), "{greeting}");
        assert_echoes(&mut socket, "hello").await;
        // Another change of the key (its scopes still cover the route) keeps it.
        let still = ApiKeyUpdate {
            scopes: Some(Some(ScopeSet::parse("live").unwrap())),
            ..ApiKeyUpdate::default()
        };
        app.admin.update_api_key(&key.id, still).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_echoes(&mut socket, "still here").await;

        let narrow = ApiKeyUpdate {
            scopes: Some(Some(ScopeSet::parse("chat").unwrap())),
            ..ApiKeyUpdate::default()
        };
        app.admin.update_api_key(&key.id, narrow).await.unwrap();
        let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after its key lost the route's scope");
        let refused = app
            .client
            .get(app.url("/ws"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap();
        assert_insufficient(refused, "live").await;
    }
}

#[tokio::test]
async fn route_scopes_need_an_upstream() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/test.db", directory.path().display());
    let mut settings = assetpool_server::ServerSettings::new(url);
    settings.listen = "127.0.0.1:0".to_owned();
    settings.route_scopes = rules(&["GET /orders=orders:read"]);
    let error = assetpool_server::Application::build(settings)
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("needs --upstream"), "{error}");
}
