//! Liveness, readiness and metrics.

use crate::error::ApiError;
use crate::state::AppState;
use assetpool_wire::ErrorCode;
use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::time::Duration;

/// Longest wait for the alert outbox backlog at scrape time.
const OUTBOX_BACKLOG_TIMEOUT: Duration = Duration::from_secs(1);

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = crate::openapi::HealthStatus)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: storage answers. With `--limits-store`, the body also says
/// whether Redis answers (`"limitsStore": "up"` or `"down"`); a Redis that
/// does not answer leaves the server ready (limits are then per server).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready (with a limits store, `limitsStore` says whether it answers)", body = crate::openapi::HealthStatus),
        (status = 503, description = "Storage unreachable (an error body), or the server is shutting down (`{\"status\": \"draining\"}`)", body = crate::openapi::NotReady),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let body = Json(json!({"status": "draining"}));
        return Ok((StatusCode::SERVICE_UNAVAILABLE, body).into_response());
    }
    match state.service.store().ping().await {
        Ok(()) => Ok(Json(match state.service.shared_limits() {
            Some(shared) => json!({
                "status": "ready",
                "limitsStore": if shared.status().up { "up" } else { "down" },
            }),
            None => json!({"status": "ready"}),
        })
        .into_response()),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(ErrorCode::StorageUnavailable))
        }
    }
}

/// Prometheus metrics in the text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the OpenMetrics text format (which Prometheus scrapes)", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = &state.metrics;
    metrics.observe_service(&state.service);
    // The outbox backlog is one storage read: bounded, and never fails the scrape
    // (on error or timeout the gauge keeps its last value).
    match tokio::time::timeout(
        OUTBOX_BACKLOG_TIMEOUT,
        state.service.store().webhook_backlog(),
    )
    .await
    {
        Ok(Ok(backlog)) => {
            metrics
                .alert_outbox_backlog
                .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        }
        Ok(Err(error)) => tracing::debug!(%error, "cannot read the alert outbox backlog"),
        Err(_) => tracing::debug!("reading the alert outbox backlog timed out"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
