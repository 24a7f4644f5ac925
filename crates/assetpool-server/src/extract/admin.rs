//! Extractors of the admin API: path segments, an optional JSON body, and
//! query strings (page limit and cursor, periods), whose refusals are
//! `invalid_request` with messages that never echo input.

use super::body::{parse_strict_form, StrictJson, MAX_BODY_BYTES};
use crate::error::ApiError;
use assetpool_wire::ErrorCode;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use chrono::Duration;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Entries of a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// A path segment (`{id}`, `{email}`); a segment that does not decode is
/// `invalid_request`.
#[derive(Debug, Clone)]
pub struct AdminPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for AdminPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| AdminPath(segment))
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

    /// A period such as `since=24h` (see [`parse_period`]).
    pub fn period(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_period(text).ok_or_else(|| {
                    ApiError::invalid_request(
                        "a period is a positive number with a unit: s, m, h, d or w (e.g. 24h)",
                    )
                })
            })
            .transpose()
    }
}

/// Longest accepted period: a little over the two years day buckets are kept.
const MAX_PERIOD_SECONDS: i64 = 800 * 86_400;

/// Parses a period: a positive integer and one unit, `s`, `m`, `h`, `d` or
/// `w` (`30m`, `24h`, `7d`), at most 800 days.
pub fn parse_period(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|character: char| !character.is_ascii_digit())?;
    let (count, unit) = text.split_at(split);
    let count: i64 = count.parse().ok().filter(|count| *count > 0)?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let seconds = count.checked_mul(unit_seconds)?;
    (seconds <= MAX_PERIOD_SECONDS).then(|| Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_period("30m"), Some(Duration::minutes(30)));
        assert_eq!(parse_period("24h"), Some(Duration::hours(24)));
        assert_eq!(parse_period("7d"), Some(Duration::days(7)));
        assert_eq!(parse_period("2w"), Some(Duration::weeks(2)));
        for bad in [
            "",
            "h",
            "0h",
            "-1h",
            "24",
            "24x",
            "1.5h",
            "99999999999999999999d",
            "900d",
        ] {
            assert_eq!(parse_period(bad), None, "{bad}");
        }
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
