//! The OpenAPI 3 document, generated from the handlers and wire types.

use crate::controllers::admin::AdminDocs;
use crate::controllers::{authentication, health, introspect, leaks, oauth, resource, well_known};
use crate::gateway::forward_auth;
use axum::Json;
use utoipa::OpenApi;

/// The OpenAPI description of every endpoint.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "assetpool",
        description = "Authentication for HTTP APIs: an API key (x-api-key) on every request plus a short-lived bearer token (x-api-token or Authorization: Bearer) obtained by the OAuth 2.0 password grant."
    ),
    paths(
        authentication::login,
        authentication::refresh,
        authentication::logout,
        oauth::issue_token,
        introspect::introspect,
        leaks::report_leaks,
        well_known::jwks,
        well_known::metadata,
        resource::get_resource,
        forward_auth::verify_forwarded,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
    ),
    components(schemas(assetpool_wire::ErrorCode, assetpool_wire::Environment)),
    modifiers(&AdminDocs)
)]
pub struct ApiDoc;

/// Serves this document.
#[utoipa::path(get, path = "/openapi.json", tag = "discovery",
    responses((status = 200, description = "The OpenAPI document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
