//! Extractors of the admin API: path segments (one, or a pair), an optional JSON body, and
//! query strings (page limit and cursor, periods), whose refusals are
//! `invalid_request` with messages that never echo input.

use super::body::{parse_strict_form, StrictJson, MAX_BODY_BYTES};
use crate::error::ApiError;
use assetpool_core::period::Period;
use assetpool_wire::ErrorCode;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Entries of a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// A path segment (`{id}`, `{email}`), as text or as the id type it names
/// (`AdminPath<KeyId>`: any segment is taken, an unknown id is then not
/// found); a segment that does not decode is `invalid_request`.
#[derive(Debug, Clone)]
pub struct AdminPath<T = String>(pub T);

impl<S: Send + Sync, T: From<String>> FromRequestParts<S> for AdminPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| AdminPath(T::from(segment)))
            .map_err(|_| ApiError::invalid_request("the path is malformed"))
    }
}

/// Two path segments (`{id}` and `{email}`), as text or as the id types
/// they name; a segment that does not decode is `invalid_request`.
#[derive(Debug, Clone)]
pub struct AdminPathPair<A = String, B = String>(pub A, pub B);

impl<S: Send + Sync, A: From<String>, B: From<String>> FromRequestParts<S> for AdminPathPair<A, B> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|Path((first, second))| AdminPathPair(A::from(first), B::from(second)))
            .map_err(|_| ApiError::invalid_request("the path is malformed"))
    }
}

/// A JSON body that may be left out: no body (and no `Content-Type`) is
/// `T::default()`; a body is read as [`StrictJson`] reads it.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if request.headers().contains_key(CONTENT_TYPE) {
            let StrictJson(value) = StrictJson::<T>::from_request(request, state).await?;
            return Ok(OptionalJson(value));
        }
        let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
        if body.is_empty() {
            Ok(OptionalJson(T::default()))
        } else {
            Err(ApiError::with_message(
                ErrorCode::UnsupportedMediaType,
                "the request body must be application/json",
            ))
        }
    }
}

/// The parameters of a query string (none repeated).
#[derive(Debug, Default)]
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw else {
            return Ok(QueryParams::default());
        };
        parse_strict_form(raw.as_bytes())
            .map(QueryParams)
            .map_err(|_| {
                ApiError::invalid_request("the query string is malformed or repeats a parameter")
            })
    }

    /// A parameter, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// `limit`: 1 to [`assetpool_core::admin::MAX_PAGE`], default [`DEFAULT_PAGE`].
    pub fn limit(&self) -> Result<u32, ApiError> {
        let Some(text) = self.get("limit") else {
            return Ok(DEFAULT_PAGE);
        };
        text.parse::<u32>()
            .ok()
            .filter(|limit| (1..=assetpool_core::admin::MAX_PAGE).contains(limit))
            .ok_or_else(|| ApiError::invalid_request("limit must be an integer from 1 to 500"))
    }

    /// `cursor` of the lists kept as an audit or alert sequence: a number.
    pub fn sequence_cursor(&self) -> Result<Option<i64>, ApiError> {
        self.get("cursor")
            .map(|text| {
                text.parse::<i64>().map_err(|_| {
                    ApiError::invalid_request("the cursor is not one this server gave")
                })
            })
            .transpose()
    }

    /// A period such as `since=24h` ([`Period::parse`]).
    pub fn period(&self, name: &str) -> Result<Option<Period>, ApiError> {
        self.get(name)
            .map(|text| {
                Period::parse(text).map_err(|error| ApiError::invalid_request(error.to_string()))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_parsed_once_by_the_core_grammar() {
        let query = QueryParams::parse(Some("since=7d&other=90")).unwrap();
        assert_eq!(
            query.period("since").unwrap(),
            Some(Period::parse("7d").unwrap())
        );
        assert_eq!(
            query.period("other").unwrap(),
            Some(Period::parse("90s").unwrap())
        );
        assert_eq!(query.period("absent").unwrap(), None);
        let refused = QueryParams::parse(Some("since=sekrit"))
            .unwrap()
            .period("since")
            .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn limits_and_cursors() {
        let query = QueryParams::parse(Some("limit=3&cursor=17")).unwrap();
        assert_eq!(query.limit().unwrap(), 3);
        assert_eq!(query.sequence_cursor().unwrap(), Some(17));
        assert_eq!(QueryParams::parse(None).unwrap().limit().unwrap(), 50);
        for bad in ["limit=0", "limit=501", "limit=x"] {
            assert!(QueryParams::parse(Some(bad)).unwrap().limit().is_err());
        }
        assert!(QueryParams::parse(Some("limit=1&limit=2")).is_err());
    }
}
