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
//! ECDSA signature or the shared-secret HMAC with its timestamp,
//! [`crate::leak_reports`]). The signature headers are checked before any
//! byte of the body is read (a missing or malformed one, an unknown key, a
//! stale timestamp: refused at once), the signature over the exact body
//! bytes before the body is parsed.
//!
//! With neither configured the endpoint does not exist (404 `not_found`). A
//! missing or bad signature, an unknown key identifier or a timestamp more
//! than 5 minutes away is 403 `forbidden`; a body that is not an array of
//! reports with a `token` is 400 `invalid_request`. Bodies up to
//! [`MAX_REPORT_BYTES`] are accepted (the scanner batches matches), not the
//! 16 KiB of other endpoints.

use super::no_store;
use crate::error::ApiError;
use crate::extract::{check_json_text, has_content_type};
use crate::state::AppState;
use assetpool_core::leaks::handle_reports;
use assetpool_wire::{ErrorCode, ErrorResponse, LeakReport, LeakVerdict};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::response::Response;
use axum::Json;

/// Largest accepted report body: 256 KiB, some 700 matches of assetpool
/// keys as GitHub reports them (a match is about 350 bytes of JSON).
pub const MAX_REPORT_BYTES: usize = 256 * 1024;

/// Reads the whole body, at most [`MAX_REPORT_BYTES`].
async fn read_report_body(request: Request) -> Result<bytes::Bytes, ApiError> {
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
    Ok(body)
}

/// Answers a signed batch of leak reports.
#[utoipa::path(
    post, path = "/api/keys/leaked", tag = "keys",
    params(
        ("Github-Public-Key-Identifier" = Option<String>, Header, description = "Key of --leak-report-keys that signed the body"),
        ("Github-Public-Key-Signature" = Option<String>, Header, description = "Base64 ASN.1 DER ECDSA P-256 SHA-256 signature of the body"),
        ("X-Assetpool-Signature" = Option<String>, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" with --leak-report-secret>; t at most 5 minutes away from the server's clock"),
    ),
    request_body(content = Vec<LeakReport>, description = "Matches found by the scanner (at most 256 KiB)"),
    responses(
        (status = 200, description = "One verdict per report, in order", body = Vec<LeakVerdict>),
        (status = 400, description = "invalid_request: not an array of reports with a token", body = ErrorResponse),
        (status = 403, description = "forbidden: missing or bad signature, unknown key, stale timestamp", body = ErrorResponse),
        (status = 404, description = "not_found: leak reports are not configured", body = ErrorResponse),
        (status = 413, description = "payload_too_large: body over 256 KiB", body = ErrorResponse),
        (status = 415, description = "unsupported_media_type: not application/json", body = ErrorResponse),
    )
)]
pub async fn report_leaks(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let verifier = state.leak_reports.current();
    if !verifier.enabled() {
        return Err(ApiError::new(ErrorCode::NotFound));
    }
    if !has_content_type(request.headers(), "application/json")? {
        return Err(ApiError::with_message(
            ErrorCode::UnsupportedMediaType,
            "the request body must be application/json",
        ));
    }
    let now = state.service.clock().now().timestamp();
    let signature = verifier.signature(request.headers(), now)?;
    let body = read_report_body(request).await?;
    signature.verify(&body)?;
    check_json_text(&body)?;
    let reports: Vec<LeakReport> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::invalid_request("the body must be a JSON array of reports, each with a token")
    })?;
    let verdicts = handle_reports(&state.service, &reports, verifier.policy()).await?;
    Ok(no_store(Json(verdicts)))
}
