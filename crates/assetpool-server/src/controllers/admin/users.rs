//! `/admin/users`: create, list and change users (their scopes and
//! passwords), disable, enable and unlock them, and read their failed-login
//! counters (`/admin/login-failures`).

use super::{creation_page, cut_page, scope_set, AdminAuthenticated, AdminPath, QueryParams};
use crate::error::ApiError;
use crate::extract::StrictJson;
use assetpool_core::admin::{login_failure_response, Admin};
use assetpool_core::password::normalize_email;
use assetpool_wire::{
    AdminCreateUserRequest, AdminSetPasswordRequest, AdminUnlockResponse, AdminUpdateUserRequest,
    ErrorResponse, LoginFailureList, UserPage, UserResponse,
};
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;

/// Lists users, oldest first.
#[utoipa::path(
    get, path = "/admin/users", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "Users per page, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The nextCursor of the previous page (opaque: creation time and id of its last user)"),
    ),
    responses(
        (status = 200, description = "One page of users", body = UserPage),
        (status = 400, description = "Bad query parameter", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_users(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<UserPage>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let limit = query.limit()?;
    let page = creation_page(query.get("cursor"), limit)?;
    let users = admin.list_users(&page).await?;
    let order = |user: &UserResponse| (user.created_at.timestamp_millis(), user.id.clone());
    let (items, next_cursor) = cut_page(users, limit, order);
    Ok(Json(UserPage { items, next_cursor }))
}

/// Creates a user (an admin with `"admin": true`; restricted to `scopes` when given).
#[utoipa::path(
    post, path = "/admin/users", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    request_body = AdminCreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        (status = 400, description = "Malformed body, bad email, weak password or existing user", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn create_user(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    StrictJson(request): StrictJson<AdminCreateUserRequest>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    let scopes = request.scopes.as_deref().map(scope_set).transpose()?;
    let user = admin
        .create_user_with(
            &request.email,
            SecretString::from(request.password),
            request.admin,
            scopes,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Changes a user: `scopes` replaces the user's set (`null`: unrestricted).
/// The user's live sessions granted a scope outside the new set are revoked
/// (every server refuses their tokens within a second).
#[utoipa::path(
    patch, path = "/admin/users/{email}", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("email" = String, Path, description = "The user's email")),
    request_body = AdminUpdateUserRequest,
    responses(
        (status = 200, description = "Changed", body = UserResponse),
        (status = 400, description = "Nothing to change, malformed body or bad scope", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    )
)]
pub async fn update_user(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(email): AdminPath,
    StrictJson(request): StrictJson<AdminUpdateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let Some(scopes) = request.scopes else {
        return Err(ApiError::invalid_request("nothing to change: give scopes"));
    };
    let scopes = scopes.as_deref().map(scope_set).transpose()?;
    let changed = admin.set_user_scopes(&email, scopes).await?;
    Ok(Json(changed.user))
}

/// Replaces a user's password: every session of the user ends within a
/// second.
#[utoipa::path(
    post, path = "/admin/users/{email}/password", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("email" = String, Path, description = "The user's email")),
    request_body = AdminSetPasswordRequest,
    responses(
        (status = 200, description = "Changed", body = UserResponse),
        (status = 400, description = "Malformed body or weak password", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn set_password(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(email): AdminPath,
    StrictJson(request): StrictJson<AdminSetPasswordRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    admin
        .set_password(&email, SecretString::from(request.password))
        .await?;
    Ok(Json(admin.show_user(&email).await?))
}

/// Disables a user: every session ends within a second, logins fail.
#[utoipa::path(
    post, path = "/admin/users/{email}/disable", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("email" = String, Path, description = "The user's email")),
    responses(
        (status = 200, description = "Disabled", body = UserResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    )
)]
pub async fn disable_user(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(email): AdminPath,
) -> Result<Json<UserResponse>, ApiError> {
    set_disabled(&admin, &email, true).await
}

/// Enables a disabled user.
#[utoipa::path(
    post, path = "/admin/users/{email}/enable", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("email" = String, Path, description = "The user's email")),
    responses(
        (status = 200, description = "Enabled", body = UserResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    )
)]
pub async fn enable_user(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(email): AdminPath,
) -> Result<Json<UserResponse>, ApiError> {
    set_disabled(&admin, &email, false).await
}

/// Clears a user's login-failure counters (every server at once).
#[utoipa::path(
    post, path = "/admin/users/{email}/unlock", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("email" = String, Path, description = "The user's email (need not exist: counters are kept per login name)")),
    responses(
        (status = 200, description = "Unlocked", body = AdminUnlockResponse),
        (status = 400, description = "Empty email", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn unlock_user(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(email): AdminPath,
) -> Result<Json<AdminUnlockResponse>, ApiError> {
    let cleared = admin.unlock_user(&email).await?;
    Ok(Json(AdminUnlockResponse {
        email: normalize_email(&email),
        cleared,
    }))
}

/// The failed-login counters of one account (and its addresses), or all.
#[utoipa::path(
    get, path = "/admin/login-failures", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("email" = Option<String>, Query, description = "Only this account's counters (default: every one)")),
    responses(
        (status = 200, description = "The counters", body = LoginFailureList),
        (status = 400, description = "Bad query parameter", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_login_failures(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<LoginFailureList>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let entries = admin.login_throttles(query.get("email")).await?;
    Ok(Json(LoginFailureList {
        items: entries.iter().map(login_failure_response).collect(),
    }))
}

async fn set_disabled(
    admin: &Admin,
    email: &str,
    disabled: bool,
) -> Result<Json<UserResponse>, ApiError> {
    admin.set_user_disabled(email, disabled).await?;
    Ok(Json(admin.show_user(email).await?))
}
