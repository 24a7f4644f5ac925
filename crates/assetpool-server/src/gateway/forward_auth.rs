//! `/auth/verify`: the forward-auth endpoint for nginx `auth_request`,
//! Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP service mode).
//!
//! Also answered under `/auth/verify/{path}`, since Envoy appends the original
//! path to its `path_prefix`. The proxy forwards the client's headers; the check is the one of every
//! protected endpoint. Accepted: 200 with the identity headers, which the
//! proxy copies to the upstream request. Refused: the contract's status, JSON
//! body and `WWW-Authenticate` (built by [`crate::error::ApiError`]).
//!
//! A request may also need scopes: `?scope=a+b` (on `/auth/verify` itself;
//! repeated parameters add up) or `x-assetpool-required-scope: a b` (set by
//! the proxy). Both given: it needs the scopes of both. Without all of them:
//! 403 `insufficient_scope`, whose `WWW-Authenticate` names the requirement.
//! Under `/auth/verify/{path}` the query string is the original request's
//! (Envoy appends it), so only the header counts there.

use super::insert_identity_headers;
use crate::controllers::no_store;
use crate::error::ApiError;
use crate::extract::Authenticated;
use assetpool_core::ScopeSet;
use assetpool_wire::{ErrorResponse, REQUIRED_SCOPE_HEADER};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

/// The path whose query string may carry `scope`.
const VERIFY_PATH: &str = "/auth/verify";

/// What a forwarded request needs: the union of the `scope` query parameters
/// (on [`VERIFY_PATH`] only) and the `x-assetpool-required-scope` headers;
/// `None` when nothing is required. A malformed one is `invalid_request`.
fn requirement(uri: &Uri, headers: &HeaderMap) -> Result<Option<ScopeSet>, ApiError> {
    let malformed = || {
        ApiError::invalid_request(
            "the required scope (the scope parameter or the x-assetpool-required-scope header) \
             is malformed: scopes are 1 to 64 characters of a-z, 0-9, '_', '.', ':' and '-', \
             separated by spaces",
        )
    };
    let mut texts: Vec<String> = Vec::new();
    if uri.path() == VERIFY_PATH {
        if let Some(query) = uri.query() {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(query).map_err(|_| malformed())?;
            texts.extend(
                pairs
                    .into_iter()
                    .filter(|(name, _)| name == "scope")
                    .map(|(_, value)| value),
            );
        }
    }
    for value in headers.get_all(REQUIRED_SCOPE_HEADER) {
        texts.push(value.to_str().map_err(|_| malformed())?.to_owned());
    }
    let mut required: Option<ScopeSet> = None;
    for text in &texts {
        let scopes = ScopeSet::parse(text).map_err(|_| malformed())?;
        required = Some(match required {
            Some(so_far) => so_far.union(&scopes).map_err(|_| malformed())?,
            None => scopes,
        });
    }
    Ok(required.filter(|required| !required.is_empty()))
}

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
    method(get, post, put, patch, delete), path = "/auth/verify", tag = "gateway",
    description = "Forward authentication for nginx auth_request, Traefik ForwardAuth and \
        Envoy ext_authz. Any method is accepted (the document lists the usual ones); the \
        answer does not depend on it. The proxy forwards the client's headers, and \
        the original method and URI in X-Original-Method/X-Original-URI (nginx) or \
        X-Forwarded-Method/X-Forwarded-Uri (Traefik). Accepted requests get 200 with the \
        identity headers, to copy to the upstream request. A request may need scopes: \
        `?scope=a+b` or the header `x-assetpool-required-scope: a b` (both: all of them); \
        without every one of them it gets 403 insufficient_scope.",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("X-Original-URI" = Option<String>, Header, description = "The original URI (nginx); X-Forwarded-Uri for Traefik"),
        ("X-Original-Method" = Option<String>, Header, description = "The original method (nginx); X-Forwarded-Method for Traefik"),
        ("scope" = Option<String>, Query, description = "Scopes the request needs, space-separated (all of them)"),
        ("x-assetpool-required-scope" = Option<String>, Header, description = "Scopes the request needs, space-separated (all of them)"),
    ),
    responses(
        (status = 200, description = "Allowed; empty body", headers(
            ("x-assetpool-user-id" = String, description = "The user id (token subject)"),
            ("x-assetpool-user-email" = String, description = "The user's email"),
            ("x-assetpool-application" = String, description = "The API key's application"),
            ("x-assetpool-key-id" = String, description = "The API key's id"),
            ("x-assetpool-environment" = String, description = "development, staging or production"),
            ("x-assetpool-scopes" = String, description = "The request's scopes, space-separated (the token's within the API key's); absent when unrestricted"),
        )),
        (status = 400, description = "Conflicting or repeated credentials, or a malformed required scope", body = ErrorResponse),
        (status = 401, description = "Bad API key (api_key_disabled included) or token (token_revoked also while the key its session was opened through is disabled)", body = ErrorResponse, headers(
            ("WWW-Authenticate" = String, description = "On token refusals: Bearer realm=\"assetpool\", error=\"invalid_token\" (without error when the token is missing)"),
        )),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list; insufficient_scope: the token lacks a required scope; WWW-Authenticate: Bearer realm=\"assetpool\", error=\"insufficient_scope\", scope=\"...\" names them", body = ErrorResponse),
        (status = 429, description = "The API key is over its rate limit or quota (rate_limited)", body = ErrorResponse),
        (status = 503, description = "Storage unreachable for too long", body = ErrorResponse),
    )
)]
pub async fn verify_forwarded(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    authenticated: Result<Authenticated, ApiError>,
) -> Result<Response, ApiError> {
    let (original_method, original_path) = original_request(&headers, &method);
    let required = requirement(&uri, &headers)?;
    match authenticated {
        Ok(Authenticated(verified)) => {
            if let Some(required) = &required {
                if !verified.scopes().satisfies(required) {
                    tracing::debug!(
                        %original_method, %original_path,
                        "forwarded request refused: insufficient scope"
                    );
                    return Err(ApiError::insufficient_scope(required));
                }
            }
            tracing::debug!(%original_method, %original_path, "forwarded request allowed");
            let mut response = no_store(());
            insert_identity_headers(response.headers_mut(), &verified);
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
