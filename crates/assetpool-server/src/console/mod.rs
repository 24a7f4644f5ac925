//! The web console at `/console/` (CONTRACT section 9), served by the
//! binary itself: server-rendered askama templates, one stylesheet and one
//! small script embedded in the binary, no inline script or style.
//!
//! - [`session`]: the session cookie ([`session::Viewer`]) and the CSRF
//!   check of every state-changing request ([`session::ConsoleForm`]);
//! - [`sign_in`]: signing in (throttled by the API login's code path) and out;
//! - [`keys`], [`applications`], [`users`], [`monitoring`]: the pages, each
//!   action through the core's `Admin` acting as the signed-in user;
//! - [`pages`] and [`views`]: rendering and error pages; [`chart`]: usage
//!   charts drawn as SVG on the server.
//!
//! Every answer carries the console's security headers
//! ([`SECURITY_HEADERS`]); pages are `Cache-Control: no-store` (the
//! router's default), assets are cached for a year under versioned paths.
//! `serve --console false` leaves the routes out (404).

pub mod applications;
pub mod chart;
pub mod keys;
pub mod monitoring;
pub mod pages;
pub mod session;
pub mod sign_in;
pub mod users;
pub mod views;

use crate::state::AppState;
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content-Security-Policy of every console answer: nothing inline,
/// nothing from elsewhere, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// The headers every console answer carries.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

const STYLESHEET: &str = include_str!("../../assets/console/console.css");
const SCRIPT: &str = include_str!("../../assets/console/console.js");

/// The console's routes, with its security headers.
pub fn routes() -> Router<AppState> {
    let router = Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(applications::home))
        .route(
            "/console/sign-in",
            get(sign_in::show_sign_in).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/assets/{version}/{file}", get(asset))
        .route("/console/keys", get(keys::list_keys).post(keys::create_key))
        .route("/console/keys/{id}", get(keys::show_key))
        .route("/console/keys/{id}/rotate", post(keys::rotate_key))
        .route("/console/keys/{id}/revoke", post(keys::revoke_key))
        .route("/console/keys/{id}/disable", post(keys::disable_key))
        .route("/console/keys/{id}/enable", post(keys::enable_key))
        .route("/console/keys/{id}/update", post(keys::update_key))
        .route(
            "/console/applications",
            get(applications::list_applications).post(applications::create_application),
        )
        .route(
            "/console/applications/{id}",
            get(applications::show_application),
        )
        .route(
            "/console/applications/{id}/members",
            post(applications::set_member),
        )
        .route(
            "/console/applications/{id}/members/remove",
            post(applications::remove_member),
        )
        .route(
            "/console/users",
            get(users::list_users).post(users::create_user),
        )
        .route("/console/users/password", post(users::reset_password))
        .route("/console/users/{email}/{action}", post(users::change_user))
        .route("/console/alerts", get(monitoring::list_alerts))
        .route("/console/alerts/{id}/ack", post(monitoring::ack_alert))
        .route("/console/audit", get(monitoring::list_audit))
        .route("/console/signing-keys", get(monitoring::list_signing_keys))
        .route(
            "/console/signing-keys/rotate",
            post(monitoring::rotate_signing_key),
        )
        .route("/console/{*rest}", get(not_found).post(not_found))
        // Any other method of a console path is the same 404 page as an
        // unknown path (a bare 405 would tell routes apart).
        .method_not_allowed_fallback(not_found);
    SECURITY_HEADERS
        .iter()
        .fold(router, |router, (name, value)| {
            router.layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            ))
        })
}

async fn not_found() -> Response {
    pages::PageError::not_found().into_response()
}

/// `GET /console/assets/{version}/{file}`: the embedded stylesheet and
/// script, cached for a year (a new version has new paths).
async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let (content_type, body) = match file.as_str() {
        "console.css" => ("text/css; charset=utf-8", STYLESHEET),
        "console.js" => ("text/javascript; charset=utf-8", SCRIPT),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if version != pages::ASSET_VERSION {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
