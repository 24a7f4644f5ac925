//! Liveness, readiness and metrics.

use crate::error::ApiError;
use crate::state::AppState;
use assetpool_wire::{ErrorCode, ErrorResponse};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: storage answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "Storage unreachable", body = ErrorResponse),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.service.store().ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(ErrorCode::StorageUnavailable))
        }
    }
}

/// Prometheus metrics in the text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = &state.metrics;
    let in_flight = i64::try_from(state.service.hashing_in_flight()).unwrap_or(i64::MAX);
    metrics.hashing_in_flight.set(in_flight);
    let reads = state.service.verify_storage_reads();
    let counted = metrics.verify_storage_reads.get();
    if reads > counted {
        metrics.verify_storage_reads.inc_by(reads - counted);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
