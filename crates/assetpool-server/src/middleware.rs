//! Request logging and metrics, and the request time limit.
//!
//! Logs name the path without its query string and never a header value.

use crate::error::ApiError;
use crate::gateway::proxy::Proxied;
use crate::metrics::{FailureLabels, RequestLabels};
use crate::state::AppState;
use assetpool_wire::ErrorCode;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

/// Logs each request once and counts it.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_owned(),
        |matched| matched.as_str().to_owned(),
    );
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let response = next.run(request).await;
    let route = if response.extensions().get::<Proxied>().is_some() {
        "upstream".to_owned()
    } else {
        route
    };
    let status = response.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        state
            .metrics
            .failures
            .get_or_create(&FailureLabels {
                code: code.as_str().to_owned(),
            })
            .inc();
    }
    tracing::info!(
        target: "assetpool::http",
        %method,
        path = %path,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    response
}

/// Answers 408 `request_timeout` when a request takes longer than the limit.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(ErrorCode::RequestTimeout).into_response(),
    }
}
