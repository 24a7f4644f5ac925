//! Retries of `assetpool-client` against a scripted stub server: 503
//! `overloaded` with `Retry-After`, and a 401 `token_expired` for a token the
//! client still believes in. A stub makes both deterministic.

use assetpool_client::{Client, Credentials, ErrorCode, RetryPolicy};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Script {
    /// Logins answered 503 before the first success.
    overloaded_logins: usize,
    /// Resource calls answered 503 before the first success.
    overloaded_resources: usize,
    /// Tokens the stub calls expired.
    expired: HashSet<String>,
    /// Every call: (path, when).
    calls: Vec<(&'static str, Instant)>,
    issued: usize,
}

type Shared = Arc<Mutex<Script>>;

fn overloaded() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "1")],
        Json(json!({"error": "overloaded", "message": "the server is busy; retry later"})),
    )
        .into_response()
}

fn tokens(script: &mut Script) -> Response {
    script.issued += 1;
    let n = script.issued;
    Json(json!({
        "accessToken": format!("t{n}"),
        "expiresIn": 3600,
        "tokenType": "Bearer",
        "refreshToken": format!("r{n}"),
    }))
    .into_response()
}

async fn login(State(shared): State<Shared>) -> Response {
    let mut script = shared.lock().unwrap();
    script.calls.push(("login", Instant::now()));
    if script.overloaded_logins > 0 {
        script.overloaded_logins -= 1;
        return overloaded();
    }
    tokens(&mut script)
}

async fn refresh(State(shared): State<Shared>) -> Response {
    let mut script = shared.lock().unwrap();
    script.calls.push(("refresh", Instant::now()));
    tokens(&mut script)
}

async fn resource(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let mut script = shared.lock().unwrap();
    script.calls.push(("resource", Instant::now()));
    if script.overloaded_resources > 0 {
        script.overloaded_resources -= 1;
        return overloaded();
    }
    let token = headers
        .get("x-api-token")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if script.expired.contains(token) || script.expired.contains("*") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "token_expired", "message": "the access token has expired"})),
        )
            .into_response();
    }
    Json(json!({"ok": true})).into_response()
}

/// Starts the stub; returns its address and script.
async fn stub(script: Script) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(script));
    let app = Router::new()
        .route("/api/authentication/login", post(login))
        .route("/api/authentication/refresh", post(refresh))
        .route("/v1/resource", get(resource))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, shared)
}

fn client(address: &str) -> Client {
    Client::builder(
        address,
        "apk_prod_stub",
        Credentials::new("a@example.com", "pw"),
    )
    .build()
    .unwrap()
}

fn times(shared: &Shared, path: &str) -> Vec<Instant> {
    let script = shared.lock().unwrap();
    script
        .calls
        .iter()
        .filter(|(called, _)| *called == path)
        .map(|(_, at)| *at)
        .collect()
}

#[tokio::test]
async fn a_503_login_is_retried_after_retry_after() {
    let (address, shared) = stub(Script {
        overloaded_logins: 1,
        ..Script::default()
    })
    .await;
    client(&address).login().await.unwrap();
    let logins = times(&shared, "login");
    assert_eq!(logins.len(), 2);
    // The backoff alone would be 200 ms; the server asked for 1 s.
    assert!(
        logins[1] - logins[0] >= Duration::from_secs(1),
        "{:?}",
        logins[1] - logins[0]
    );
}

#[tokio::test]
async fn a_503_request_is_retried_after_retry_after() {
    let (address, shared) = stub(Script {
        overloaded_resources: 1,
        ..Script::default()
    })
    .await;
    let client = client(&address);
    let response = client
        .send(client.get("/v1/resource").unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let calls = times(&shared, "resource");
    assert_eq!(calls.len(), 2);
    assert!(calls[1] - calls[0] >= Duration::from_secs(1));
}

#[tokio::test]
async fn retries_are_bounded_and_the_error_keeps_retry_after() {
    let (address, shared) = stub(Script {
        overloaded_logins: 10,
        ..Script::default()
    })
    .await;
    let client = Client::builder(
        &address,
        "apk_prod_stub",
        Credentials::new("a@example.com", "pw"),
    )
    .retry(RetryPolicy {
        max_retries: 1,
        initial_backoff: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
    })
    .build()
    .unwrap();
    let error = client.login().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Overloaded));
    assert_eq!(error.status(), Some(503));
    match error {
        assetpool_client::Error::Api(refusal) => {
            assert_eq!(refusal.retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(times(&shared, "login").len(), 2);
}

#[tokio::test]
async fn a_token_expired_answer_renews_once_and_retries() {
    let (address, shared) = stub(Script {
        expired: HashSet::from(["t1".to_owned()]),
        ..Script::default()
    })
    .await;
    let client = client(&address);
    // The client believes t1 is good for an hour; the server says it expired.
    let response = client
        .send(client.get("/v1/resource").unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(times(&shared, "login").len(), 1);
    assert_eq!(times(&shared, "refresh").len(), 1);
    assert_eq!(times(&shared, "resource").len(), 2);
    assert_eq!(client.access_token().await.unwrap(), "t2");

    // Only one renewal per request: a second refusal is the caller's error.
    shared.lock().unwrap().expired.insert("*".to_owned());
    let error = client
        .send(client.get("/v1/resource").unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TokenExpired));
    assert_eq!(times(&shared, "refresh").len(), 2);
    assert_eq!(times(&shared, "resource").len(), 4);
}
