//! The credentials a request presents, and the check of them.
//!
//! Credentials are read only from headers: the API key from `x-api-key`, the
//! token from `x-api-token` or `Authorization: Bearer`. Query strings and
//! cookies are never consulted. [`authenticate_request`] is the one check of
//! a protected request, behind [`Authenticated`], `/auth/verify`, the admin
//! API and the reverse proxy.

use super::client_address::client_address;
use crate::error::ApiError;
use crate::state::AppState;
use crate::usage::UsageSlot;
use assetpool_core::service::Verified;
use assetpool_wire::{API_KEY_HEADER, API_TOKEN_HEADER};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use std::fmt;
use std::sync::Arc;

/// The credentials a request presents. `Debug` never shows them.
#[derive(Default, Clone)]
pub struct PresentedCredentials {
    /// The `x-api-key` value.
    pub api_key: Option<String>,
    /// The token from `x-api-token` or `Authorization: Bearer`.
    pub token: Option<String>,
}

impl fmt::Debug for PresentedCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PresentedCredentials")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `x-api-key`, parsed once (a `&str` name is parsed on every look-up).
const API_KEY: HeaderName = HeaderName::from_static(API_KEY_HEADER);
/// `x-api-token`.
const API_TOKEN: HeaderName = HeaderName::from_static(API_TOKEN_HEADER);

/// Reads a header that may appear at most once; `Err` when repeated.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_request(format!(
            "the {name} header may appear only once"
        )));
    }
    // A value that is not visible ASCII cannot be a well-formed credential;
    // it is kept as an empty string, which later fails the format check.
    Ok(first.map(|value| value.to_str().unwrap_or_default()))
}

/// The credentials of a request, borrowed from its headers (the check of
/// every protected request copies nothing).
#[derive(Default, Clone, Copy)]
struct Presented<'a> {
    api_key: Option<&'a str>,
    token: Option<&'a str>,
}

impl<'a> Presented<'a> {
    fn from_headers(headers: &'a HeaderMap) -> Result<Self, ApiError> {
        let api_key = single_header(headers, &API_KEY)?;
        let header_token = single_header(headers, &API_TOKEN)?;
        let authorization = single_header(headers, &AUTHORIZATION)?;
        let bearer = authorization.and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let token = match (header_token, bearer) {
            (Some(header_token), Some(bearer)) if header_token != bearer => {
                return Err(ApiError::invalid_request(
                    "x-api-token and Authorization carry different tokens",
                ))
            }
            (Some(token), _) | (None, Some(token)) => Some(token),
            (None, None) => None,
        };
        Ok(Presented { api_key, token })
    }
}

impl PresentedCredentials {
    /// Reads the credentials from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let presented = Presented::from_headers(headers)?;
        Ok(PresentedCredentials {
            api_key: presented.api_key.map(str::to_owned),
            token: presented.token.map(str::to_owned),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PresentedCredentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        PresentedCredentials::from_headers(&parts.headers)
    }
}

/// A request whose API key and token were both accepted (docs/CONTRACT.md
/// section 3, in order).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Verified);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Authenticated(
            authenticate_request(&parts.headers, &parts.extensions, state).await?,
        ))
    }
}

/// Checks the credentials of a request (docs/CONTRACT.md section 3, in
/// order): the one check behind [`Authenticated`], `/auth/verify`, the admin
/// API and the reverse proxy.
/// The API key first ([`AuthService::authenticate_key`]); once it is
/// accepted, the request is counted against it (usage) through the
/// [`UsageSlot`] in `extensions`, when there is one; then the token
/// ([`AuthService::authenticate_token`]).
///
/// [`AuthService::authenticate_key`]: assetpool_core::AuthService::authenticate_key
/// [`AuthService::authenticate_token`]: assetpool_core::AuthService::authenticate_token
pub async fn authenticate_request(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    state: &AppState,
) -> Result<Verified, ApiError> {
    let credentials = Presented::from_headers(headers)?;
    let slot = extensions.get::<Arc<UsageSlot>>();
    let client = match slot {
        Some(slot) => slot.client,
        None => client_address(headers, extensions, &state.trusted_proxies),
    };
    let key = state
        .service
        .authenticate_key(credentials.api_key, Some(client))
        .await?;
    if let Some(slot) = slot {
        slot.attach(&key);
    }
    let claims = state
        .service
        .authenticate_token(&key.record, credentials.token)?;
    Ok(Verified {
        key,
        claims,
        client: Some(client),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        let credentials = PresentedCredentials::from_headers(&headers).unwrap();
        assert_eq!(credentials.token.as_deref(), Some("abc"));
        headers.insert(API_TOKEN_HEADER, "abc".parse().unwrap());
        assert!(PresentedCredentials::from_headers(&headers).is_ok());
        headers.insert(API_TOKEN_HEADER, "other".parse().unwrap());
        assert!(PresentedCredentials::from_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.append(API_KEY_HEADER, "a".parse().unwrap());
        headers.append(API_KEY_HEADER, "b".parse().unwrap());
        assert!(PresentedCredentials::from_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Basic Zm9vOg==".parse().unwrap());
        assert!(PresentedCredentials::from_headers(&headers)
            .unwrap()
            .token
            .is_none());
    }
}
