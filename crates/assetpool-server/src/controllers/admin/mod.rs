//! The admin HTTP API under `/admin/`: keys, users, applications, alerts,
//! the audit log and signing keys, for an API key plus the token of a user created with
//! `--admin` ([`AdminAuthenticated`]). Handlers are thin: they call
//! [`assetpool_core::admin::Admin`], which records every change in the audit
//! log with the admin's identity.
//!
//! Shared here: the routes, the OpenAPI part and pagination. The admin
//! extractors (path segments, query strings, an optional JSON body) are in
//! [`crate::extract::admin`].

pub mod alerts;
pub mod applications;
pub mod audit;
pub mod auth;
pub mod key_lifecycle;
pub mod keys;
pub mod leak_check;
pub mod signing_keys;
pub mod users;

pub use auth::AdminAuthenticated;

pub use crate::extract::admin::{AdminPath, OptionalJson, QueryParams};

use crate::error::ApiError;
use crate::state::AppState;
use assetpool_core::store::CreationPage;
use assetpool_core::ScopeSet;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The admin routes and their part of the OpenAPI document; each path is
/// the one of its handler's `#[utoipa::path]` (`/admin/...`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(AdminApiDoc::openapi())
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::show_key, keys::update_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(key_lifecycle::disable_key))
        .routes(routes!(key_lifecycle::enable_key))
        .routes(routes!(keys::key_usage))
        .routes(routes!(leak_check::check_leak))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::update_user))
        .routes(routes!(users::disable_user))
        .routes(routes!(users::enable_user))
        .routes(routes!(users::unlock_user))
        .routes(routes!(users::set_password))
        .routes(routes!(users::list_login_failures))
        .routes(routes!(
            applications::list_applications,
            applications::create_application
        ))
        .routes(routes!(
            applications::show_application,
            applications::update_application
        ))
        .routes(routes!(applications::add_member))
        .routes(routes!(applications::remove_member))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::ack_alert))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(signing_keys::list_signing_keys))
        .routes(routes!(signing_keys::rotate_signing_key))
        .routes(routes!(signing_keys::revoke_signing_key))
}

/// What the admin API adds to the OpenAPI document besides its operations:
/// the `admin` tag (the security schemes its operations name are added by
/// [`crate::openapi`] for every route).
#[derive(OpenApi)]
#[openapi(
    tags((name = "admin", description = "Support staff's operations. Every route needs an API key (x-api-key) and the access token of a user created with --admin; another user's valid token gets 403 forbidden, and a client address outside the API key's allow-list 403 address_not_allowed. Changes are recorded in the audit log with the admin's identity. Lists are paginated: `limit` (1 to 500, default 50) and `cursor` (the `nextCursor` of the previous page, an opaque string); `nextCursor` is null on the last page."))
)]
struct AdminApiDoc;

/// The set of a `scopes` list of a body; a malformed scope is `invalid_request`.
pub fn scope_set(scopes: &[String]) -> Result<ScopeSet, ApiError> {
    ScopeSet::from_list(scopes)
        .map_err(|error| ApiError::invalid_request(format!("scopes: {error}")))
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
