//! `POST /api/keys/leaked`: reports of leaked keys, in the format of GitHub's
//! secret scanning partner program.
//!
//! The body is a JSON array of `{"token","type","url","source"}`; the answer
//! is an array of `{"token_hash","token_type","label"}` (`true_positive` for
//! any key of this service, else `false_positive`; see
//! [`assetpool_core::leaks`]). A live key raises a `key_leaked` alert, stored
//! before the answer, and is revoked under `--on-leak revoke`.
//!
//! A report is believed only when signed by a configured sender (GitHub's
//! ECDSA signature or the shared-secret HMAC, [`crate::leak_reports`]),
//! checked over the exact body bytes before the body is parsed.
//!
//! With neither configured the endpoint does not exist (404 `not_found`). A
//! missing or bad signature or an unknown key identifier is 403 `forbidden`; a
//! body that is not an array of reports with a `token` is 400
//! `invalid_request`. Bodies up to [`MAX_REPORT_BYTES`] are accepted (the
//! scanner batches matches), not the 16 KiB of other endpoints.

use super::no_store;
use crate::error::ApiError;
use crate::extract::{check_json_text, has_content_type};
use crate::state::AppState;
use assetpool_core::leaks::handle_reports;
use assetpool_wire::{ErrorCode, ErrorResponse, LeakReport, LeakVerdict};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

/// Largest accepted report body.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// Reads the whole body, at most [`MAX_REPORT_BYTES`].
async fn read_report_body(request: Request) -> Result<(HeaderMap, bytes::Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_REPORT_BYTES as u64) {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge));
    }
    let body = axum::body::to_bytes(body, MAX_REPORT_BYTES)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
    Ok((parts.headers, body))
}

/// Answers a signed batch of leak reports.
#[utoipa::path(
    post, path = "/api/keys/leaked", tag = "keys",
    params(
        ("Github-Public-Key-Identifier" = Option<String>, Header, description = "Key of --leak-report-keys that signed the body"),
        ("Github-Public-Key-Signature" = Option<String>, Header, description = "Base64 ASN.1 DER ECDSA P-256 SHA-256 signature of the body"),
        ("X-Assetpool-Signature" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256 of the body with --leak-report-secret>"),
    ),
    request_body(content = Vec<LeakReport>, description = "Matches found by the scanner (at most 1 MiB)"),
    responses(
        (status = 200, description = "One verdict per report, in order", body = Vec<LeakVerdict>),
        (status = 400, description = "invalid_request: not an array of reports with a token", body = ErrorResponse),
        (status = 403, description = "forbidden: missing or bad signature, unknown key", body = ErrorResponse),
        (status = 404, description = "not_found: leak reports are not configured", body = ErrorResponse),
        (status = 413, description = "payload_too_large: body over 1 MiB", body = ErrorResponse),
        (status = 415, description = "unsupported_media_type: not application/json", body = ErrorResponse),
    )
)]
pub async fn report_leaks(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let verifier = &state.leak_reports;
    if !verifier.enabled() {
        return Err(ApiError::new(ErrorCode::NotFound));
    }
    if !has_content_type(request.headers(), "application/json")? {
        return Err(ApiError::with_message(
            ErrorCode::UnsupportedMediaType,
            "the request body must be application/json",
        ));
    }
    let (headers, body) = read_report_body(request).await?;
    verifier.verify(&headers, &body)?;
    check_json_text(&body)?;
    let reports: Vec<LeakReport> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::invalid_request("the body must be a JSON array of reports, each with a token")
    })?;
    let verdicts = handle_reports(&state.service, &reports, verifier.policy()).await?;
    Ok(no_store(Json(verdicts)))
}
