//! `/auth/verify`: the forward-auth endpoint for nginx `auth_request`,
//! Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP service mode).
//!
//! Also answered under `/auth/verify/{path}`, since Envoy appends the original
//! path to its `path_prefix`. The proxy forwards the client's headers; the check is the one of every
//! protected endpoint. Accepted: 200 with the identity headers, which the
//! proxy copies to the upstream request. Refused: the contract's status, JSON
//! body and `WWW-Authenticate` (built by [`crate::error::ApiError`]).

use super::identity_headers;
use crate::controllers::no_store;
use crate::error::ApiError;
use crate::extract::Authenticated;
use assetpool_wire::ErrorResponse;
use axum::http::{HeaderMap, Method};
use axum::response::Response;

/// The original method and path as nginx (`X-Original-*`) or Traefik
/// (`X-Forwarded-*`) report them; only for the log, without the query string.
fn original_request(headers: &HeaderMap, method: &Method) -> (String, String) {
    let first = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|name| headers.get(*name)?.to_str().ok())
            .map(str::to_owned)
    };
    let original_method = first(["x-original-method", "x-forwarded-method"])
        .unwrap_or_else(|| method.as_str().to_owned());
    let original_path = first(["x-original-uri", "x-forwarded-uri"])
        .map(|uri| uri.split(['?', '#']).next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (original_method, original_path)
}

/// Checks a forwarded request (any method): 200 with identity headers, or the refusal.
#[utoipa::path(
    get, path = "/auth/verify", tag = "gateway",
    description = "Forward authentication for nginx auth_request, Traefik ForwardAuth and \
        Envoy ext_authz. Any method is accepted. The proxy forwards the client's headers, and \
        the original method and URI in X-Original-Method/X-Original-URI (nginx) or \
        X-Forwarded-Method/X-Forwarded-Uri (Traefik). Accepted requests get 200 with the \
        identity headers, to copy to the upstream request.",
    params(
        ("x-api-key" = String, Header, description = "The application's API key"),
        ("x-api-token" = Option<String>, Header, description = "The access token (or Authorization: Bearer)"),
        ("X-Original-URI" = Option<String>, Header, description = "The original URI (nginx); X-Forwarded-Uri for Traefik"),
        ("X-Original-Method" = Option<String>, Header, description = "The original method (nginx); X-Forwarded-Method for Traefik"),
    ),
    responses(
        (status = 200, description = "Allowed; empty body", headers(
            ("x-assetpool-user-id" = String, description = "The user id (token subject)"),
            ("x-assetpool-user-email" = String, description = "The user's email"),
            ("x-assetpool-application" = String, description = "The API key's application"),
            ("x-assetpool-key-id" = String, description = "The API key's id"),
            ("x-assetpool-environment" = String, description = "development, staging or production"),
        )),
        (status = 400, description = "Conflicting or repeated credentials", body = ErrorResponse),
        (status = 401, description = "Bad API key (api_key_disabled included) or token (token_revoked also while the key its session was opened through is disabled)", body = ErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list", body = ErrorResponse),
        (status = 429, description = "The API key is over its rate limit or quota (rate_limited)", body = ErrorResponse),
        (status = 503, description = "Storage unreachable for too long", body = ErrorResponse),
    )
)]
pub async fn verify_forwarded(
    method: Method,
    headers: HeaderMap,
    authenticated: Result<Authenticated, ApiError>,
) -> Result<Response, ApiError> {
    let (original_method, original_path) = original_request(&headers, &method);
    match authenticated {
        Ok(Authenticated(verified)) => {
            tracing::debug!(%original_method, %original_path, "forwarded request allowed");
            let mut response = no_store(());
            response.headers_mut().extend(identity_headers(&verified));
            Ok(response)
        }
        Err(refusal) => {
            tracing::debug!(
                %original_method, %original_path, code = %refusal.code().as_str(),
                "forwarded request refused"
            );
            Err(refusal)
        }
    }
}
