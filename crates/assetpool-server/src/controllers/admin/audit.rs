//! `/admin/audit`: the audit log and the check of its hash chain.

use super::{sequence_next, AdminAuthenticated, QueryParams};
use crate::error::ApiError;
use assetpool_wire::{AuditPage, AuditVerificationResponse, ErrorResponse};
use axum::extract::RawQuery;
use axum::Json;

/// Lists the audit log, newest first.
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "Entries per page, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The nextCursor of the previous page (opaque)"),
    ),
    responses(
        (status = 200, description = "One page of the audit log", body = AuditPage),
        (status = 400, description = "Bad query parameter", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_audit(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let limit = query.limit()?;
    let before = query.sequence_cursor()?;
    let listed = admin.list_audit(before, limit).await?;
    Ok(Json(AuditPage {
        items: listed.items,
        next_cursor: sequence_next(listed.next_before),
    }))
}

/// Walks the audit log's hash chain and reports the first entry that does
/// not fit (`broken`), or that it holds.
#[utoipa::path(
    get, path = "/admin/audit/verify", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    responses(
        (status = 200, description = "The check (broken is null when the chain holds)", body = AuditVerificationResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn verify_audit(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
) -> Result<Json<AuditVerificationResponse>, ApiError> {
    Ok(Json(admin.verify_audit().await?.to_response()))
}
