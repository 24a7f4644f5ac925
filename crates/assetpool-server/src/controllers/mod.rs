//! HTTP handlers, one module per resource. Handlers are thin: extract, call
//! the core service, map the answer.

pub mod admin;
pub mod authentication;
pub mod health;
pub mod introspect;
pub mod leaks;
pub mod oauth;
pub mod resource;
pub mod well_known;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Marks a response carrying credentials as not cacheable (RFC 6749 section 5.1).
pub(crate) fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
