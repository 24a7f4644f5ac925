//! Neither SDK follows a redirect: a server (or anything in front of it) that
//! answers 3xx with another origin's `Location` must not receive the API key,
//! the token, the login body or the introspected token there. Each test runs
//! a stub on 127.0.0.1:0 that redirects to a second listener, the recorder,
//! which notes every request it gets.

use crate::stub::{serve, Signer};
use assetpool_client::{Client, Credentials, Error};
use assetpool_verify::{Verifier, VerifyError};
use assetpool_wire::Environment;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const API_KEY: &str = "apk_prod_redirectTestKeyBody0000000000000";
const USERNAME: &str = "alice@example.com";
const PASSWORD: &str = "password-that-must-stay-home";
const REFRESH_TOKEN: &str = "refresh-token-of-the-stub";

/// One request the recorder received.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// The other origin: records every request, answers 200 `{}`.
struct Recorder {
    base: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::<Recorded>::new()));
        let log = seen.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(Recorded {
                        method,
                        uri,
                        headers,
                        body,
                    });
                    Json(json!({}))
                }
            },
        );
        let base = serve(app).await;
        let recorder = Recorder { base, seen };
        // The recorder is reachable and records: a redirect that reached it
        // would show.
        let probe = reqwest::get(format!("{}/probe", recorder.base))
            .await
            .unwrap();
        assert_eq!(probe.status(), 200);
        assert_eq!(recorder.seen.lock().unwrap().len(), 1);
        recorder.seen.lock().unwrap().clear();
        recorder
    }

    /// Asserts that nothing reached this origin (and says what did).
    fn assert_untouched(&self) {
        let seen = self.seen.lock().unwrap();
        let leaked: Vec<String> = seen
            .iter()
            .map(|request| {
                let credentials: Vec<&str> = ["x-api-key", "x-api-token", "authorization"]
                    .into_iter()
                    .filter(|name| request.headers.contains_key(*name))
                    .collect();
                let body = String::from_utf8_lossy(&request.body);
                let secrets: Vec<&str> = [
                    ("password", PASSWORD),
                    ("refresh token", REFRESH_TOKEN),
                    ("introspected token", "token=ey"),
                ]
                .into_iter()
                .filter(|(_, secret)| body.contains(secret))
                .map(|(name, _)| name)
                .collect();
                format!(
                    "{} {}: credential headers {credentials:?}, secrets in the body {secrets:?}",
                    request.method, request.uri,
                )
            })
            .collect();
        assert!(
            leaked.is_empty(),
            "requests reached the redirect target: {leaked:#?}"
        );
    }
}

/// A handler answering `status` with `Location: target`.
fn redirect(
    status: StatusCode,
    target: String,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || std::future::ready((status, [("location", target.clone())]).into_response())
}

/// A token response with a lifetime of `expires_in` seconds.
fn tokens(expires_in: u64) -> Json<serde_json::Value> {
    Json(json!({
        "accessToken": "access-token-of-the-stub",
        "expiresIn": expires_in,
        "tokenType": "Bearer",
        "refreshToken": REFRESH_TOKEN,
    }))
}

fn client(base: &str) -> Client {
    Client::builder(base, API_KEY, Credentials::new(USERNAME, PASSWORD))
        .build()
        .unwrap()
}

/// The client's error must say that a redirect was refused.
fn assert_redirect_refused(error: &Error, status: StatusCode) {
    assert_eq!(error.status(), Some(status.as_u16()), "{error:?}");
    assert!(
        error.to_string().contains("redirect"),
        "the error does not say why: {error}"
    );
}

/// The redirects reqwest follows by default; 307 and 308 first, as they
/// re-send the body.
const REDIRECTS: [StatusCode; 5] = [
    StatusCode::TEMPORARY_REDIRECT,
    StatusCode::PERMANENT_REDIRECT,
    StatusCode::MOVED_PERMANENTLY,
    StatusCode::FOUND,
    StatusCode::SEE_OTHER,
];

#[tokio::test]
async fn login_does_not_follow_a_redirect_to_another_origin() {
    for status in REDIRECTS {
        let recorder = Recorder::start().await;
        let target = format!("{}/api/authentication/login", recorder.base);
        let stub =
            serve(Router::new().route("/api/authentication/login", post(redirect(status, target))))
                .await;
        let outcome = client(&stub).login().await;
        recorder.assert_untouched();
        assert_redirect_refused(&outcome.unwrap_err(), status);
    }
}

#[tokio::test]
async fn refresh_does_not_follow_a_redirect_to_another_origin() {
    let recorder = Recorder::start().await;
    let target = format!("{}/api/authentication/refresh", recorder.base);
    let stub = serve(
        Router::new()
            // A token with no lifetime left: the next call renews it.
            .route("/api/authentication/login", post(|| async { tokens(0) }))
            .route(
                "/api/authentication/refresh",
                post(redirect(StatusCode::TEMPORARY_REDIRECT, target)),
            ),
    )
    .await;
    let client = client(&stub);
    client.login().await.unwrap();
    let outcome = client.access_token().await;
    recorder.assert_untouched();
    assert_redirect_refused(&outcome.unwrap_err(), StatusCode::TEMPORARY_REDIRECT);
}

#[tokio::test]
async fn send_does_not_follow_a_redirect_to_another_origin() {
    for status in REDIRECTS {
        let recorder = Recorder::start().await;
        let target = format!("{}/v1/resource", recorder.base);
        let stub = serve(
            Router::new()
                .route("/api/authentication/login", post(|| async { tokens(3600) }))
                .route("/v1/resource", get(redirect(status, target.clone())))
                .route("/v1/orders", post(redirect(status, target))),
        )
        .await;
        let client = client(&stub);
        let read = client.send(client.get("/v1/resource").unwrap()).await;
        let write = client
            .send(client.post("/v1/orders").unwrap().json(&json!({"item": 1})))
            .await;
        recorder.assert_untouched();
        assert_redirect_refused(&read.unwrap_err(), status);
        assert_redirect_refused(&write.unwrap_err(), status);
    }
}

#[tokio::test]
async fn a_path_cannot_change_the_host() {
    let recorder = Recorder::start().await;
    let stub =
        serve(Router::new().route("/api/authentication/login", post(|| async { tokens(3600) })))
            .await;
    let client = client(&stub);
    let other_host = recorder.base.trim_start_matches("http://");
    let paths = [
        format!("@{other_host}/v1/resource"),
        format!(".{other_host}/v1/resource"),
        "v1/resource".to_owned(),
    ];
    for path in &paths {
        let outcome = client.get(path);
        assert!(
            matches!(outcome, Err(Error::Config(_))),
            "{path:?}: {outcome:?}"
        );
        assert!(client.url(path).is_err(), "{path:?}");
    }
    recorder.assert_untouched();
}

#[tokio::test]
async fn send_attaches_credentials_only_for_the_servers_origin() {
    let recorder = Recorder::start().await;
    let stub =
        serve(Router::new().route("/api/authentication/login", post(|| async { tokens(3600) })))
            .await;
    let client = client(&stub);
    // A request built by any reqwest client, for another origin.
    let foreign = reqwest::Client::new().get(format!("{}/v1/resource", recorder.base));
    let outcome = client.send(foreign).await;
    recorder.assert_untouched();
    assert!(matches!(outcome, Err(Error::Config(_))), "{outcome:?}");
}

#[tokio::test]
async fn the_jwks_fetch_does_not_follow_a_redirect() {
    let recorder = Recorder::start().await;
    let target = format!("{}/.well-known/jwks.json", recorder.base);
    let stub = serve(Router::new().route(
        "/.well-known/jwks.json",
        get(redirect(StatusCode::FOUND, target)),
    ))
    .await;
    let verifier = Verifier::builder(&stub, Environment::Production)
        .build()
        .unwrap();
    let outcome = verifier.verify(&Signer::new().token(&stub)).await;
    recorder.assert_untouched();
    match outcome {
        Err(VerifyError::Unavailable(reason)) => {
            assert!(reason.contains("redirect"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn introspection_does_not_follow_a_redirect() {
    for status in [
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let recorder = Recorder::start().await;
        let target = format!("{}/oauth/introspect", recorder.base);
        let signer = Signer::new();
        let jwks = signer.jwks();
        let stub = serve(
            Router::new()
                .route(
                    "/.well-known/jwks.json",
                    get(move || std::future::ready(Json(jwks.clone()))),
                )
                .route("/oauth/introspect", post(redirect(status, target))),
        )
        .await;
        let verifier = Verifier::builder(&stub, Environment::Production)
            .introspection(API_KEY, Duration::from_secs(5))
            .build()
            .unwrap();
        let outcome = verifier.verify(&signer.token(&stub)).await;
        recorder.assert_untouched();
        match outcome {
            Err(VerifyError::Unavailable(reason)) => {
                assert!(reason.contains("redirect"), "{reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
