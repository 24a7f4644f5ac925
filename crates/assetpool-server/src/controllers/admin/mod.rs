//! The admin HTTP API under `/admin/`: keys, users, alerts, the audit log
//! and signing keys, for an API key plus the token of a user created with
//! `--admin` ([`AdminAuthenticated`]). Handlers are thin: they call
//! [`assetpool_core::admin::Admin`], which records every change in the audit
//! log with the admin's identity.
//!
//! Shared here: the routes, the OpenAPI part and pagination. The admin
//! extractors (path segments, query strings, an optional JSON body) are in
//! [`crate::extract::admin`].

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod keys;
pub mod signing_keys;
pub mod users;

pub use auth::AdminAuthenticated;

pub use crate::extract::admin::{AdminPath, OptionalJson, QueryParams};

use crate::error::ApiError;
use crate::state::AppState;
use assetpool_core::store::CreationPage;
use axum::routing::{get, post};
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
}
