//! `/admin/leak-check`: which candidate texts are keys of this service
//! (`keys check-leak` over the admin API), revoking the live ones if asked.

use super::AdminAuthenticated;
use crate::error::ApiError;
use crate::extract::StrictJson;
use assetpool_wire::{AdminCheckLeakRequest, ErrorResponse, LeakCheckList};
use axum::Json;

/// Checks candidate texts (e.g. found by a secret scanner): one entry per
/// candidate, in order, never the candidate itself. With `"revoke": true`
/// the live keys found are revoked (audited).
#[utoipa::path(
    post, path = "/admin/leak-check", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    request_body = AdminCheckLeakRequest,
    responses(
        (status = 200, description = "One entry per candidate", body = LeakCheckList),
        (status = 400, description = "Malformed body", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn check_leak(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    StrictJson(request): StrictJson<AdminCheckLeakRequest>,
) -> Result<Json<LeakCheckList>, ApiError> {
    let items = admin
        .check_leaked_keys(&request.candidates, request.revoke)
        .await?;
    Ok(Json(LeakCheckList { items }))
}
