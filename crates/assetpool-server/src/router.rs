//! Every route of the server, and the layers around them.

use crate::controllers::{authentication, health, introspect, leaks, oauth, resource, well_known};
use crate::error::ApiError;
use crate::extract::refuse_control_characters;
use crate::gateway::{forward_auth, proxy};
use crate::middleware::{ObserveLayer, TimeLimitLayer};
use crate::openapi::openapi_json;
use crate::state::AppState;
use assetpool_wire::ErrorCode;
use axum::http::{header, HeaderValue};
use axum::routing::{any, get, post};
use axum::Router;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// Builds the router with its middleware.
///
/// assetpool's own routes get the `Cache-Control: no-store` default, the
/// request time limit, and the refusal of control characters in the path and
/// query. In reverse-proxy mode every other request goes to
/// [`proxy::forward`], outside those two layers: the upstream's own
/// `Cache-Control` is kept, and a streaming body is bounded by the upstream
/// timeout (until response headers) instead of the request time limit.
///
/// With `serve_metrics` false (`--metrics-listen` set: metrics have their own
/// listener), `/metrics` is not served here.
pub fn router(state: AppState, request_timeout: Duration, serve_metrics: bool) -> Router {
    let own = Router::new()
        .route("/api/authentication/login", post(authentication::login))
        .route("/api/authentication/refresh", post(authentication::refresh))
        .route("/api/authentication/logout", post(authentication::logout))
        .route("/oauth/token", post(oauth::issue_token))
        .route("/oauth/introspect", post(introspect::introspect))
        .route("/api/keys/leaked", post(leaks::report_leaks))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(well_known::metadata),
        )
        .route("/v1/resource", get(resource::get_resource))
        .route("/auth/verify", any(forward_auth::verify_forwarded))
        // Envoy's ext_authz appends the original path to its path prefix.
        .route("/auth/verify/{*path}", any(forward_auth::verify_forwarded))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi_json))
        .nest("/admin", crate::controllers::admin::routes());
    let own = if serve_metrics {
        own.route("/metrics", get(health::metrics))
    } else {
        own
    };
    let own = own
        .fallback(|| async { ApiError::new(ErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed) })
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(TimeLimitLayer::new(request_timeout))
                .layer(axum::middleware::from_fn(refuse_control_characters)),
        );
    let routes = if state.upstream.is_some() {
        own.fallback(proxy::forward)
    } else {
        own
    };
    // One outer layer sets the request id, counts and logs (see `middleware`).
    routes.layer(ObserveLayer::new(&state)).with_state(state)
}
