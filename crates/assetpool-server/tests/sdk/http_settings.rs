//! `assetpool-verify`'s caller-configured HTTP client: the JWKS is fetched
//! through it (here, with a user agent of the caller's, standing for a proxy
//! or a private CA), and redirects stay off whatever it asks for.

use crate::stub::{serve, Signer};
use assetpool_verify::{Verifier, VerifyError};
use assetpool_wire::Environment;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn the_jwks_is_fetched_through_the_configured_client() {
    let signer = Signer::new();
    let jwks = signer.jwks();
    let agents = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = agents.clone();
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move |headers: HeaderMap| {
            let jwks: Value = jwks.clone();
            let seen = seen.clone();
            async move {
                let agent = headers
                    .get(header::USER_AGENT)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(agent);
                Json(jwks)
            }
        }),
    );
    let base = serve(app).await;
    let verifier = Verifier::builder(&base, Environment::Production)
        .configure_http(|http| http.user_agent("backend-with-its-own-settings/1"))
        .build()
        .unwrap();
    let claims = verifier.verify(&signer.token(&base)).await.unwrap();
    assert_eq!(claims.email, "alice@example.com");
    assert_eq!(
        agents.lock().unwrap().as_slice(),
        ["backend-with-its-own-settings/1"]
    );
}

#[tokio::test]
async fn redirects_stay_off_whatever_the_configured_client_asks() {
    let signer = Signer::new();
    let jwks = signer.jwks();
    let app = Router::new()
        .route(
            "/.well-known/jwks.json",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "/elsewhere/jwks.json")],
                )
                    .into_response()
            }),
        )
        .route(
            "/elsewhere/jwks.json",
            get(move || {
                let jwks: Value = jwks.clone();
                async move { Json(jwks) }
            }),
        );
    let base = serve(app).await;
    let verifier = Verifier::builder(&base, Environment::Production)
        .configure_http(|http| http.redirect(reqwest::redirect::Policy::limited(5)))
        .build()
        .unwrap();
    let refusal = verifier.verify(&signer.token(&base)).await.unwrap_err();
    assert!(
        matches!(refusal, VerifyError::Unavailable(_)),
        "{refusal:?}"
    );
}
