//! Extractors: credentials from headers, strict JSON and form bodies, the client address.
//!
//! Credentials are read only from headers: the API key from `x-api-key`, the
//! token from `x-api-token` or `Authorization: Bearer`. Query strings and
//! cookies are never consulted.

use crate::error::ApiError;
use crate::state::AppState;
use assetpool_core::service::Verified;
use assetpool_wire::{ErrorCode, API_KEY_HEADER, API_TOKEN_HEADER};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The credentials a request presents. `Debug` never shows them.
#[derive(Default, Clone)]
pub struct Credentials {
    /// The `x-api-key` value.
    pub api_key: Option<String>,
    /// The token from `x-api-token` or `Authorization: Bearer`.
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Reads a header that may appear at most once; `Err` when repeated.
fn single_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_request(format!(
            "the {name} header may appear only once"
        )));
    }
    // A value that is not visible ASCII cannot be a well-formed credential;
    // it is kept as an empty string, which later fails the format check.
    Ok(first.map(|value| value.to_str().map(str::to_owned).unwrap_or_default()))
}

impl Credentials {
    /// Reads the credentials from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let api_key = single_header(headers, API_KEY_HEADER)?;
        let header_token = single_header(headers, API_TOKEN_HEADER)?;
        let authorization = single_header(headers, AUTHORIZATION.as_str())?;
        let bearer = authorization.and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
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
        Ok(Credentials { api_key, token })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Credentials::from_headers(&parts.headers)
    }
}

/// A request whose API key and token were both accepted (CONTRACT section 3, in order).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Verified);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Authenticated(
            authenticate_headers(&parts.headers, state).await?,
        ))
    }
}

/// Checks the credentials of `headers` (CONTRACT section 3, in order): the one
/// check behind [`Authenticated`], `/auth/verify` and the reverse proxy.
pub async fn authenticate_headers(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Verified, ApiError> {
    let credentials = Credentials::from_headers(headers)?;
    Ok(state
        .service
        .authenticate(credentials.api_key.as_deref(), credentials.token.as_deref())
        .await?)
}

/// The address of the client (the socket's peer).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(ClientAddress(address))
    }
}

fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

async fn read_body(request: Request) -> Result<axum::body::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge));
    }
    axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))
}

/// A JSON body, checked strictly: `application/json`, at most 16 KiB, no
/// duplicate keys at any depth, no trailing bytes. Unknown fields are ignored.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(request.headers(), "application/json") {
            return Err(ApiError::with_message(
                ErrorCode::UnsupportedMediaType,
                "the request body must be application/json",
            ));
        }
        let body = read_body(request).await?;
        serde_json::from_slice::<NoDuplicateKeys>(&body).map_err(|_| {
            ApiError::invalid_request("the request body is not valid JSON (or repeats a key)")
        })?;
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(ApiError::invalid_request(
                "the request body must be a JSON object",
            ));
        }
        let value = serde_json::from_slice::<T>(&body).map_err(|_| {
            ApiError::invalid_request(
                "the request body is missing a required field or has a field of the wrong type",
            )
        })?;
        Ok(StrictJson(value))
    }
}

/// An `application/x-www-form-urlencoded` body in which no parameter repeats
/// (RFC 6749 section 3.2).
#[derive(Debug, Default)]
pub struct StrictForm(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for StrictForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(request.headers(), "application/x-www-form-urlencoded") {
            return Err(ApiError::with_message(
                ErrorCode::UnsupportedMediaType,
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        let body = read_body(request).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| ApiError::invalid_request("the form body is malformed"))?;
        let mut fields = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if fields.insert(name, value).is_some() {
                return Err(ApiError::invalid_request(
                    "a form parameter appears more than once",
                ));
            }
        }
        Ok(StrictForm(fields))
    }
}

/// Deserialises any JSON value, failing on an object that repeats a key.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(A::Error::custom("duplicate key"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let ok = br#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#;
        assert!(serde_json::from_slice::<NoDuplicateKeys>(ok).is_ok());
        for bad in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"a": {"b": 1, "b": 1}}"#,
            br#"[{"x": 1, "x": 1}]"#,
            br#"{"a": 1} x"#,
        ] {
            assert!(serde_json::from_slice::<NoDuplicateKeys>(bad).is_err());
        }
    }

    #[test]
    fn credentials_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        let credentials = Credentials::from_headers(&headers).unwrap();
        assert_eq!(credentials.token.as_deref(), Some("abc"));
        headers.insert(API_TOKEN_HEADER, "abc".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_ok());
        headers.insert(API_TOKEN_HEADER, "other".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.append(API_KEY_HEADER, "a".parse().unwrap());
        headers.append(API_KEY_HEADER, "b".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Basic Zm9vOg==".parse().unwrap());
        assert!(Credentials::from_headers(&headers).unwrap().token.is_none());
    }
}
