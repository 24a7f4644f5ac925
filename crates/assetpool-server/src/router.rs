//! Every route of the server, and the layers around them.
//!
//! A route is declared once: `routes!(handler)` takes its path and method
//! from the handler's `#[utoipa::path]`, and the same line adds it to the
//! router and to the OpenAPI document ([`crate::openapi`]).

use crate::controllers::{
    admin, authentication, health, introspect, leaks, oauth, resource, well_known,
};
use crate::error::ApiError;
use crate::gateway::{forward_auth, proxy};
use crate::middleware::{security_headers, ObserveLayer, OwnRoutesLayer};
use crate::openapi::{with_document, ApiDoc};
use crate::state::AppState;
use assetpool_wire::ErrorCode;
use axum::routing::any;
use axum::Router;
use std::time::Duration;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// Builds the router with its middleware, and the OpenAPI document it serves
/// at `/openapi.json`.
///
/// assetpool's own routes get the `Cache-Control: no-store` default, the
/// request time limit, and the refusal of control characters in the path and
/// query ([`OwnRoutesLayer`]). In reverse-proxy mode every other request goes to
/// [`proxy::forward`], outside those two layers: the upstream's own
/// `Cache-Control` is kept, and a streaming body is bounded by the upstream
/// timeout (until response headers) instead of the request time limit.
///
/// With `serve_metrics` false (`--metrics-listen` set: metrics have their own
/// listener, [`metrics_router`]), `/metrics` is not served here; the document
/// still describes it.
pub fn router(
    state: AppState,
    request_timeout: Duration,
    serve_metrics: bool,
) -> serde_json::Result<Router> {
    let own = with_document(own_routes(serve_metrics))?;
    // The web console (`serve --console`): pages, not API operations, so
    // outside the OpenAPI document; off, its paths are plain 404s.
    let own = if state.console {
        own.merge(crate::console::routes())
    } else {
        own
    }
    .fallback(|| async { ApiError::new(ErrorCode::NotFound) })
    .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed) })
    .layer(OwnRoutesLayer::new(request_timeout));
    let routes = if state.upstream.is_some() {
        own.fallback(proxy::forward)
    } else {
        own
    };
    // One outer layer sets the request id, counts and logs, and adds the
    // security headers to every answer, proxied ones too (see `middleware`).
    Ok(routes.layer(ObserveLayer::new(&state)).with_state(state))
}

/// assetpool's own routes (all but `/openapi.json`) with their document.
fn own_routes(serve_metrics: bool) -> OpenApiRouter<AppState> {
    let own = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(authentication::login))
        .routes(routes!(authentication::refresh))
        .routes(routes!(authentication::logout))
        .routes(routes!(oauth::issue_token))
        .routes(routes!(introspect::introspect))
        .routes(routes!(leaks::report_leaks))
        .routes(routes!(well_known::jwks))
        .routes(routes!(well_known::metadata))
        .routes(routes!(resource::get_resource))
        .routes(verify_forwarded_any_method())
        // Envoy's ext_authz appends the original path to its path prefix:
        // the same endpoint, left out of the document.
        .route("/auth/verify/{*path}", any(forward_auth::verify_forwarded))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .merge(admin::routes());
    let metrics = routes!(health::metrics);
    if serve_metrics {
        own.routes(metrics)
    } else {
        document_only(own, metrics)
    }
}

/// `/auth/verify`, answered for every method (a proxy asks with the method
/// of the request it checks), documented as the `GET` of its `#[utoipa::path]`.
fn verify_forwarded_any_method() -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, _) = routes!(forward_auth::verify_forwarded);
    (schemas, paths, any(forward_auth::verify_forwarded))
}

/// Adds a route's operation to the document without serving it.
fn document_only(
    mut routes: OpenApiRouter<AppState>,
    (schemas, paths, _): UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let document = routes.get_openapi_mut();
    document.paths.paths.extend(paths.paths);
    document
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    routes
}

/// The router of the metrics-only listener (`--metrics-listen`): `GET
/// /metrics` and nothing else.
pub fn metrics_router(state: AppState) -> Router {
    let (metrics, _) = OpenApiRouter::new()
        .routes(routes!(health::metrics))
        .split_for_parts();
    metrics
        .fallback(|| async { ApiError::new(ErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed) })
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}
