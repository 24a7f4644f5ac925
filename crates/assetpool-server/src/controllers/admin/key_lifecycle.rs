//! `/admin/keys/{id}/disable` and `/enable`, and the parsing of the
//! lifecycle fields `POST /admin/keys` and `PATCH /admin/keys/{id}` take
//! (`expiresAt`, `metadata`, `owner`, `allowedCidrs`), once for both.

use super::{AdminAuthenticated, AdminPath};
use crate::error::ApiError;
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::ids::KeyId;
use assetpool_core::key_metadata::KeyMetadata;
use assetpool_wire::{ApiKeyResponse, ErrorResponse};
use axum::Json;
use chrono::{DateTime, Utc};

/// Disables a key until it is enabled again: it is refused with
/// `api_key_disabled`, and the tokens of the sessions opened through it with
/// `token_revoked`, on every server within a second.
#[utoipa::path(
    post, path = "/admin/keys/{id}/disable", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Disabled (already disabled: unchanged)", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden), or the client address is outside the API key's allow-list (address_not_allowed)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn disable_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(admin.set_api_key_disabled(&id, true).await?))
}

/// Enables a disabled key: it and the live tokens of its sessions are
/// accepted again on every server within a second.
#[utoipa::path(
    post, path = "/admin/keys/{id}/enable", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Enabled (not disabled: unchanged)", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden), or the client address is outside the API key's allow-list (address_not_allowed)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn enable_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(admin.set_api_key_disabled(&id, false).await?))
}

/// `metadata`: a JSON object of at most 4 KiB serialised.
pub(super) fn parse_metadata(value: serde_json::Value) -> Result<KeyMetadata, ApiError> {
    KeyMetadata::from_value(value).map_err(|error| ApiError::invalid_request(error.to_string()))
}

/// `allowedCidrs`: at least one IPv4 or IPv6 CIDR (a bare address is one host).
pub(super) fn parse_allowed_cidrs(texts: &[String]) -> Result<AllowedNetworks, ApiError> {
    AllowedNetworks::parse(texts).map_err(|error| {
        ApiError::invalid_request(format!(
            "allowedCidrs: {error} (null removes the allow-list)"
        ))
    })
}

/// `expiresAt`: an RFC 3339 time.
pub(super) fn parse_expires_at(text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_request(
                "expiresAt must be an RFC 3339 time (e.g. 2030-01-31T12:00:00Z) or null",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_fields_are_parsed_or_refused_with_invalid_request() {
        assert!(parse_expires_at("2030-01-31T12:00:00+01:00").is_ok());
        assert!(parse_expires_at("2030-01-31").is_err());
        assert!(parse_metadata(serde_json::json!({"a": 1})).is_ok());
        assert!(parse_metadata(serde_json::json!([1])).is_err());
        assert!(parse_allowed_cidrs(&["10.0.0.0/8".to_owned()]).is_ok());
        assert!(parse_allowed_cidrs(&[]).is_err());
        assert!(parse_allowed_cidrs(&["nope".to_owned()]).is_err());
    }
}
