//! `bench-proxy-ceiling`: the reverse-proxy ceiling of the HTTP stack
//! assetpool's gateway is built on. A bare axum server that forwards every
//! request, unchanged and unchecked, to an upstream through hyper-util's
//! pooled client (the client `serve --upstream` uses, set up the same way),
//! and streams the answer back. What `serve --upstream` costs beyond it is
//! assetpool's own work (the check, header rewriting, logs and metrics).
//!
//! Usage: `bench-proxy-ceiling UPSTREAM [ADDR]`, UPSTREAM as `http://HOST:PORT`,
//! ADDR by default `127.0.0.1:0`; prints `listening on http://ADDR` once ready.

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::uri::{PathAndQuery, Uri};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

#[derive(Clone)]
struct Upstream {
    authority: axum::http::uri::Authority,
    client: Client<HttpConnector, Body>,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let upstream: Uri = args
        .next()
        .context("usage: bench-proxy-ceiling UPSTREAM [ADDR]")?
        .parse()
        .context("UPSTREAM must be a URL such as http://127.0.0.1:8091")?;
    let authority = upstream
        .authority()
        .cloned()
        .context("UPSTREAM needs a host and port")?;
    let address = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    assetpool_bench::block_on(serve(authority, address))
}

async fn serve(authority: axum::http::uri::Authority, address: String) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let app = Router::new()
        .fallback(forward)
        .with_state(Upstream { authority, client });
    eprintln!("listening on http://{local}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Sends the request to the upstream as it came (only its URI made absolute).
async fn forward(State(upstream): State<Upstream>, mut request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let target = Uri::builder()
        .scheme("http")
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build();
    match target {
        Ok(target) => *request.uri_mut() = target,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    match upstream.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
