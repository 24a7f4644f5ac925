//! `bench-ceiling`: the HTTP ceiling of the machine. A bare axum server whose
//! `GET /v1/resource` reads `x-api-key` and `x-api-token` and answers the
//! same JSON shape as assetpool's, without checking anything.
//!
//! Usage: `bench-ceiling [ADDR]` (default `127.0.0.1:8090`); prints
//! `listening on http://ADDR` once ready.

use anyhow::Context as _;
use assetpool_wire::{ApiKeyIdentity, Environment, ResourceResponse, UserIdentity};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use chrono::DateTime;

fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    assetpool_bench::block_on(serve(address))
}

async fn serve(address: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let app = Router::new().route("/v1/resource", get(resource));
    eprintln!("listening on http://{local}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Answers with the shape of assetpool's `/v1/resource`, echoing the lengths
/// of the two headers so that they are read.
async fn resource(headers: HeaderMap) -> Response {
    let key = headers.get("x-api-key").map_or(0, HeaderValue::len);
    let token = headers.get("x-api-token").map_or(0, HeaderValue::len);
    let body = ResourceResponse {
        user: UserIdentity {
            id: "usr_0190f7a1b2c3d4e5f60718293a4b5c6d".to_owned(),
            email: format!("user{key}@bench.example"),
        },
        api_key: ApiKeyIdentity {
            id: "key_0190f7a1b2c3d4e5f60718293a4b5c6d".to_owned(),
            name: format!("bench key {token}"),
            environment: Environment::Production,
            application: "app_0190f7a1b2c3d4e5f60718293a4b5c6d".to_owned(),
        },
        token_expires_at: DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default(),
        scopes: None,
    };
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}
