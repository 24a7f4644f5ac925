//! The admin HTTP API under `/admin/`: keys, users, alerts, the audit log
//! and signing keys, for an API key plus the token of a user created with
//! `--admin` ([`AdminAuthenticated`]). Handlers are thin: they call
//! [`assetpool_core::admin::Admin`], which records every change in the audit
//! log with the admin's identity.
//!
//! Shared here: the routes, the OpenAPI part, query-string and path helpers
//! whose refusals are `invalid_request` with messages that never echo input,
//! and an optional JSON body.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod keys;
pub mod signing_keys;
pub mod users;

pub use auth::AdminAuthenticated;

use crate::error::ApiError;
use crate::extract::{parse_strict_form, StrictJson, MAX_BODY_BYTES};
use crate::state::AppState;
use assetpool_core::store::CreationPage;
use assetpool_wire::ErrorCode;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Entries of a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// The admin routes, to nest under `/admin`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys", get(keys::list_keys).post(keys::create_key))
        .route("/keys/{id}", get(keys::show_key).patch(keys::update_key))
        .route("/keys/{id}/rotate", post(keys::rotate_key))
        .route("/keys/{id}/revoke", post(keys::revoke_key))
        .route("/keys/{id}/usage", get(keys::key_usage))
        .route("/users", get(users::list_users).post(users::create_user))
        .route("/users/{email}/disable", post(users::disable_user))
        .route("/users/{email}/enable", post(users::enable_user))
        .route("/users/{email}/unlock", post(users::unlock_user))
        .route("/alerts", get(alerts::list_alerts))
        .route("/alerts/{id}/ack", post(alerts::ack_alert))
        .route("/audit", get(audit::list_audit))
        .route("/signing-keys", get(signing_keys::list_signing_keys))
        .route(
            "/signing-keys/rotate",
            post(signing_keys::rotate_signing_key),
        )
}

/// The admin part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        keys::list_keys,
        keys::create_key,
        keys::show_key,
        keys::update_key,
        keys::rotate_key,
        keys::revoke_key,
        keys::key_usage,
        users::list_users,
        users::create_user,
        users::disable_user,
        users::enable_user,
        users::unlock_user,
        alerts::list_alerts,
        alerts::ack_alert,
        audit::list_audit,
        signing_keys::list_signing_keys,
        signing_keys::rotate_signing_key,
    ),
    modifiers(&SecuritySchemes),
    tags((name = "admin", description = "Support staff's operations. Every route needs an API key (x-api-key) and the access token of a user created with --admin; another user's valid token gets 403 forbidden. Changes are recorded in the audit log with the admin's identity. Lists are paginated: `limit` (1 to 500, default 50) and `cursor` (the `nextCursor` of the previous page, an opaque string); `nextCursor` is null on the last page."))
)]
pub struct AdminApi;

/// Adds [`AdminApi`] to the main document (`#[openapi(modifiers(&AdminDocs))]`).
#[derive(Debug, Clone, Copy)]
pub struct AdminDocs;

impl Modify for AdminDocs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(AdminApi::openapi());
    }
}

/// The two credentials every admin route needs (`apiKey` and `bearerToken`).
#[derive(Debug, Clone, Copy)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                assetpool_wire::API_KEY_HEADER,
                "An API key of this server's environment",
            ))),
        );
        components.add_security_scheme(
            "bearerToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An admin user's access token (Authorization: Bearer or x-api-token)",
                    ))
                    .build(),
            ),
        );
    }
}

/// A path segment (`{id}`, `{email}`); a segment that does not decode is
/// `invalid_request`.
#[derive(Debug, Clone)]
pub struct AdminPath(pub String);

impl FromRequestParts<AppState> for AdminPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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

/// The next-page cursor of a list kept as a sequence.
pub fn sequence_next(next_before: Option<i64>) -> Option<String> {
    next_before.map(|before| before.to_string())
}

/// The page of a list in (creation time, id) order that `cursor` (the
/// `millis.id` of the last entry of the previous page) and `limit` ask for,
/// read one entry longer to tell whether a next page exists (see
/// [`cut_page`]). The store reads it with keyset pagination.
pub fn creation_page(cursor: Option<&str>, limit: u32) -> Result<CreationPage, ApiError> {
    let after = cursor
        .map(parse_position)
        .transpose()?
        .map(|(millis, id)| (assetpool_core::clock::from_millis(millis), id));
    Ok(CreationPage {
        after,
        limit: limit.saturating_add(1),
    })
}

/// Cuts entries read with [`creation_page`] to `limit`, and gives the cursor
/// of the next page (`None` on the last one).
pub fn cut_page<T>(
    mut items: Vec<T>,
    limit: u32,
    order: impl Fn(&T) -> (i64, String),
) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more {
        items.last().map(|item| {
            let (millis, id) = order(item);
            format!("{millis}.{id}")
        })
    } else {
        None
    };
    (items, next)
}

fn parse_position(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor
        .split_once('.')
        .and_then(|(millis, id)| Some((millis.parse::<i64>().ok()?, id.to_owned())))
        .ok_or_else(|| ApiError::invalid_request("the cursor is not one this server gave"))
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
    fn cursors_name_the_last_entry_of_a_page() {
        let page = creation_page(Some("1700000000000.key_b"), 3).unwrap();
        assert_eq!(
            page.limit, 4,
            "one more, to tell whether a next page exists"
        );
        let (time, id) = page.after.unwrap();
        assert_eq!(
            (time.timestamp_millis(), id.as_str()),
            (1_700_000_000_000, "key_b")
        );
        assert_eq!(creation_page(None, 3).unwrap().after, None);
        assert!(creation_page(Some("nonsense"), 3).is_err());

        let items: Vec<(i64, String)> = (0..4).map(|n| (n, format!("id{n}"))).collect();
        let order = |item: &(i64, String)| item.clone();
        let (page, next) = cut_page(items.clone(), 3, order);
        assert_eq!(page, items[..3]);
        assert_eq!(next.as_deref(), Some("2.id2"));
        let (page, next) = cut_page(items[..3].to_vec(), 3, order);
        assert_eq!((page.len(), next), (3, None));
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
