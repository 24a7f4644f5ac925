//! `/admin/signing-keys`: list, rotate and revoke the token-signing keys.

use super::{AdminAuthenticated, AdminPath};
use crate::error::ApiError;
use assetpool_core::ids::SigningKeyId;
use assetpool_wire::{ErrorResponse, SigningKeyList, SigningKeyResponse};
use axum::http::StatusCode;
use axum::Json;

/// Lists the signing keys, active and retired.
#[utoipa::path(
    get, path = "/admin/signing-keys", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    responses(
        (status = 200, description = "The signing keys", body = SigningKeyList),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_signing_keys(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
) -> Result<Json<SigningKeyList>, ApiError> {
    Ok(Json(SigningKeyList {
        items: admin.signing_keys().await?,
    }))
}

/// Starts signing with a new key; the old one stays published until its
/// last token has expired, so nobody is logged out.
#[utoipa::path(
    post, path = "/admin/signing-keys/rotate", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    responses(
        (status = 201, description = "The new signing key", body = SigningKeyResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn rotate_signing_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
) -> Result<(StatusCode, Json<SigningKeyResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(admin.rotate_signing_key().await?)))
}

/// Revokes a signing key at once (a leaked private key): it leaves the JWKS
/// and every token it signed is refused, on every server within a second.
#[utoipa::path(
    post, path = "/admin/signing-keys/{id}/revoke", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "The signing key's kid")),
    responses(
        (status = 200, description = "Revoked", body = SigningKeyResponse),
        (status = 400, description = "The active signing key cannot be revoked", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such signing key", body = ErrorResponse),
    )
)]
pub async fn revoke_signing_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(kid): AdminPath<SigningKeyId>,
) -> Result<Json<SigningKeyResponse>, ApiError> {
    Ok(Json(admin.revoke_signing_key(&kid).await?))
}
