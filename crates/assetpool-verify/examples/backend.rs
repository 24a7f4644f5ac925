//! A small axum backend protected by `assetpool-verify`.
//!
//! ```sh
//! cargo run -- serve --demo                                  # the auth server on :8080
//! ASSETPOOL_URL=http://127.0.0.1:8080 cargo run -p assetpool-verify --example backend
//! curl -H "x-api-token: $TOKEN" http://127.0.0.1:3000/hello  # 200 with a token, 401 without
//! ```
//!
//! Settings: `ASSETPOOL_URL` (the auth server, also its issuer), `ASSETPOOL_ENVIRONMENT`
//! (default `production`), `LISTEN` (default `127.0.0.1:3000`), and optionally
//! `ASSETPOOL_API_KEY` to also check revocation by introspection.

use assetpool_verify::{AccessClaims, Environment, Verifier, VerifyLayer};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::time::Duration;

/// A protected handler: only reached with a valid token.
async fn hello(claims: AccessClaims) -> Json<Value> {
    Json(json!({
        "hello": claims.email,
        "user": claims.sub,
        "application": claims.app,
        "expires": claims.exp,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::var("ASSETPOOL_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let environment = match std::env::var("ASSETPOOL_ENVIRONMENT") {
        Ok(name) => Environment::parse(&name)?,
        Err(_) => Environment::Production,
    };
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let mut builder = Verifier::builder(server, environment);
    if let Ok(api_key) = std::env::var("ASSETPOOL_API_KEY") {
        builder = builder.introspection(api_key, Duration::from_secs(5));
    }
    let protected = Router::new()
        .route("/hello", get(hello))
        .layer(VerifyLayer::new(builder.build()?));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(protected);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
