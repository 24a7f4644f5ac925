//! `GET /v1/resource`: the protected example resource of the seed.

use super::no_store;
use crate::error::ApiError;
use crate::extract::Authenticated;
use assetpool_wire::{ApiKeyIdentity, ErrorResponse, ResourceResponse, UserIdentity};
use axum::response::Response;
use axum::Json;
use chrono::DateTime;

/// Answers who is calling: the token's user and the request's API key.
#[utoipa::path(
    get, path = "/v1/resource", tag = "resource",
    params(
        ("x-api-key" = String, Header, description = "The application's API key"),
        ("x-api-token" = Option<String>, Header, description = "The access token (or Authorization: Bearer)"),
    ),
    responses(
        (status = 200, description = "Authenticated", body = ResourceResponse),
        (status = 400, description = "Conflicting or repeated credentials", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
    )
)]
pub async fn get_resource(Authenticated(verified): Authenticated) -> Result<Response, ApiError> {
    let key = &verified.key.record;
    let claims = &verified.claims;
    let body = ResourceResponse {
        user: UserIdentity {
            id: claims.sub.clone(),
            email: claims.email.clone(),
        },
        api_key: ApiKeyIdentity {
            id: key.id.clone(),
            name: key.name.clone(),
            environment: key.environment,
            application: key.application_id.clone(),
        },
        token_expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    };
    Ok(no_store(Json(body)))
}
