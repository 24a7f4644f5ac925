//! The gateway: assetpool in front of another HTTP service.
//!
//! Two ways to use it, one check (docs/CONTRACT.md sections 3 and 6):
//! - [`forward_auth`]: `/auth/verify`, asked by nginx `auth_request`, Traefik
//!   `ForwardAuth` or Envoy `ext_authz` whether a forwarded request may pass;
//! - [`proxy`]: `serve --upstream URL`, where assetpool itself forwards every
//!   request outside its own routes to the [`upstream`] once it is accepted, and
//!   joins accepted WebSocket upgrades into [`tunnel`]s that end with their
//!   credentials and stay within their caps.
//!
//! Both accept a request exactly as a protected endpoint does
//! ([`crate::extract::Authenticated`]) and describe the caller to the upstream
//! with the identity headers of [`identity_headers`]. No credential is ever
//! logged or forwarded.

pub mod forward_auth;
pub mod headers;
pub mod proxy;
pub mod route_scopes;
pub mod splice;
pub mod tunnel;
pub mod upstream;

use assetpool_core::service::Verified;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The user id (`sub` of the token).
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-assetpool-user-id");
/// The user's email.
pub const USER_EMAIL_HEADER: HeaderName = HeaderName::from_static("x-assetpool-user-email");
/// The application of the API key.
pub const APPLICATION_HEADER: HeaderName = HeaderName::from_static("x-assetpool-application");
/// The id (not the secret) of the API key.
pub const KEY_ID_HEADER: HeaderName = HeaderName::from_static("x-assetpool-key-id");
/// The full environment name of the key (`production`, ...).
pub const ENVIRONMENT_HEADER: HeaderName = HeaderName::from_static("x-assetpool-environment");
/// The request's scopes, space-separated; absent when unrestricted.
pub const SCOPES_HEADER: HeaderName = HeaderName::from_static(assetpool_wire::SCOPES_HEADER);

/// Prefix of every identity header; client-sent headers with it, in any
/// spelling (`X_Assetpool_...`, see [`headers::normalised_name`]), are dropped.
pub const IDENTITY_PREFIX: &str = "x-assetpool-";

/// The identity headers describing an accepted request, with
/// [`SCOPES_HEADER`] when its scopes are restricted (the token's within the
/// key's current ones; empty when restricted to none).
///
/// A value that cannot be a header value (not possible for ids and emails
/// assetpool stores) is left out rather than forwarded mangled.
pub fn identity_headers(verified: &Verified) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6);
    insert_identity_headers(&mut headers, verified);
    headers
}

/// Sets the [`identity_headers`] in `headers`, each replacing any value
/// the name had.
pub fn insert_identity_headers(headers: &mut HeaderMap, verified: &Verified) {
    let key = &verified.key.record;
    let claims = &verified.claims;
    let values = [
        (USER_ID_HEADER, claims.sub.as_str()),
        (USER_EMAIL_HEADER, claims.email.as_str()),
        (APPLICATION_HEADER, key.application_id.as_str()),
        (KEY_ID_HEADER, key.id.as_str()),
        (ENVIRONMENT_HEADER, key.environment.as_str()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if let Some(scopes) = verified.scopes().to_text() {
        if let Ok(value) = HeaderValue::try_from(scopes) {
            headers.insert(SCOPES_HEADER, value);
        }
    }
}
