//! The OpenAPI 3 document. Its operations come from the routes themselves
//! ([`crate::router`] adds each handler with its `#[utoipa::path]`, which
//! holds the route's path, method and description); this module gives the
//! rest (title, description, the schemas every refusal uses) and serves the
//! finished document, serialised once when the router is built.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The document's frame: everything but the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "assetpool",
        description = "Authentication for HTTP APIs: an API key (x-api-key) on every request plus a short-lived bearer token (x-api-token or Authorization: Bearer) obtained by the OAuth 2.0 password grant."
    ),
    components(schemas(assetpool_wire::ErrorCode, assetpool_wire::Environment))
)]
pub struct ApiDoc;

/// The finished document as JSON (cheap to clone).
#[derive(Debug, Clone)]
pub struct OpenApiJson(Bytes);

/// Serves this document.
#[utoipa::path(get, path = "/openapi.json", tag = "discovery",
    responses((status = 200, description = "The OpenAPI document")))]
pub async fn openapi_json(State(document): State<OpenApiJson>) -> Response {
    let content_type = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (content_type, document.0).into_response()
}

/// The routes of `documented`, plus `GET /openapi.json` answering their
/// document (with `/openapi.json` in it), serialised here once.
pub fn with_document<S>(documented: OpenApiRouter<S>) -> serde_json::Result<Router<S>>
where
    S: Clone + Send + Sync + 'static,
{
    let (routes, mut document) = documented.split_for_parts();
    let (serve, own_entry) = OpenApiRouter::<OpenApiJson>::default()
        .routes(routes!(openapi_json))
        .split_for_parts();
    document.merge(own_entry);
    let json = OpenApiJson(Bytes::from(serde_json::to_vec(&document)?));
    Ok(routes.merge(serve.with_state(json)))
}
