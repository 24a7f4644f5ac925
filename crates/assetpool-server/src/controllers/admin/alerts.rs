//! `/admin/alerts`: list and acknowledge alerts.

use super::{sequence_next, AdminAuthenticated, AdminPath, QueryParams};
use crate::error::ApiError;
use assetpool_core::ids::AlertId;
use assetpool_core::period::Period;
use assetpool_wire::{AlertPage, AlertResponse, ErrorResponse};
use axum::extract::RawQuery;
use axum::Json;

/// Lists alerts, newest first.
#[utoipa::path(
    get, path = "/admin/alerts", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("since" = Option<String>, Query, description = "Only alerts seen within this period: a number and an optional unit s, m, h, d or w, bare for seconds (default: all)"),
        ("limit" = Option<u32>, Query, description = "Alerts per page, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The nextCursor of the previous page (opaque)"),
    ),
    responses(
        (status = 200, description = "One page of alerts", body = AlertPage),
        (status = 400, description = "Bad query parameter", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_alerts(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<AlertPage>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let within = query.period("since")?.map(Period::duration);
    let limit = query.limit()?;
    let before = query.sequence_cursor()?;
    let listed = admin.list_alerts(within, before, limit).await?;
    Ok(Json(AlertPage {
        items: listed.items,
        next_cursor: sequence_next(listed.next_before),
    }))
}

/// Acknowledges an alert.
#[utoipa::path(
    post, path = "/admin/alerts/{id}/ack", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Alert id (alr_...)")),
    responses(
        (status = 200, description = "Acknowledged", body = AlertResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such alert", body = ErrorResponse),
    )
)]
pub async fn ack_alert(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<AlertId>,
) -> Result<Json<AlertResponse>, ApiError> {
    Ok(Json(admin.ack_alert(&id).await?))
}
