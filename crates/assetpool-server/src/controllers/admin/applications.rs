//! `/admin/applications`: create, list, show and change applications, and
//! add or remove their members.

use super::{creation_page, cut_page, AdminAuthenticated, AdminPath, QueryParams};
use crate::error::ApiError;
use crate::extract::admin::AdminPathPair;
use crate::extract::StrictJson;
use assetpool_core::ids::ApplicationId;
use assetpool_core::store::ApplicationUpdate;
use assetpool_wire::{
    AdminAddMemberRequest, AdminCreateApplicationRequest, AdminUpdateApplicationRequest,
    ApplicationPage, ApplicationResponse, ApplicationRole, ErrorResponse,
};
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::Json;

/// Lists applications with their members, oldest first.
#[utoipa::path(
    get, path = "/admin/applications", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "Applications per page, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The nextCursor of the previous page (opaque: creation time and id of its last application)"),
    ),
    responses(
        (status = 200, description = "One page of applications", body = ApplicationPage),
        (status = 400, description = "Bad query parameter", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_applications(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<ApplicationPage>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let limit = query.limit()?;
    let page = creation_page(query.get("cursor"), limit)?;
    let applications = admin.list_applications(&page).await?;
    let order = |application: &ApplicationResponse| {
        (
            application.created_at.timestamp_millis(),
            application.id.clone(),
        )
    };
    let (items, next_cursor) = cut_page(applications, limit, order);
    Ok(Json(ApplicationPage { items, next_cursor }))
}

/// Creates an application (keys are added to it with `POST /admin/keys`
/// and its `application`).
#[utoipa::path(
    post, path = "/admin/applications", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    request_body = AdminCreateApplicationRequest,
    responses(
        (status = 201, description = "Created", body = ApplicationResponse),
        (status = 400, description = "Malformed body or bad name", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn create_application(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    StrictJson(request): StrictJson<AdminCreateApplicationRequest>,
) -> Result<(StatusCode, Json<ApplicationResponse>), ApiError> {
    let application = admin
        .create_application(&request.name, request.members_only.unwrap_or(false))
        .await?;
    Ok((StatusCode::CREATED, Json(application)))
}

/// Shows one application with its members.
#[utoipa::path(
    get, path = "/admin/applications/{id}", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Application id")),
    responses(
        (status = 200, description = "The application", body = ApplicationResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such application", body = ErrorResponse),
    )
)]
pub async fn show_application(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<ApplicationId>,
) -> Result<Json<ApplicationResponse>, ApiError> {
    Ok(Json(admin.application(&id).await?))
}

/// Changes an application's name or `membersOnly`. Switching `membersOnly`
/// on ends the sessions of everyone but its members there, on every server
/// within a second.
#[utoipa::path(
    patch, path = "/admin/applications/{id}", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Application id")),
    request_body = AdminUpdateApplicationRequest,
    responses(
        (status = 200, description = "Changed", body = ApplicationResponse),
        (status = 400, description = "Malformed body or bad name", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such application", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn update_application(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<ApplicationId>,
    StrictJson(request): StrictJson<AdminUpdateApplicationRequest>,
) -> Result<Json<ApplicationResponse>, ApiError> {
    let update = ApplicationUpdate {
        name: request.name,
        members_only: request.members_only,
    };
    Ok(Json(admin.update_application(&id, update).await?))
}

/// Adds a member to an application (`role` `member` by default); adding an
/// existing member changes their role.
#[utoipa::path(
    post, path = "/admin/applications/{id}/members", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Application id")),
    request_body = AdminAddMemberRequest,
    responses(
        (status = 200, description = "The application with its members", body = ApplicationResponse),
        (status = 400, description = "Malformed body or bad role", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such application or user", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn add_member(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<ApplicationId>,
    StrictJson(request): StrictJson<AdminAddMemberRequest>,
) -> Result<Json<ApplicationResponse>, ApiError> {
    let role = request
        .role
        .as_deref()
        .map(ApplicationRole::parse)
        .transpose()
        .map_err(|error| ApiError::invalid_request(error.to_string()))?
        .unwrap_or_default();
    Ok(Json(
        admin
            .add_application_member(&id, &request.email, role)
            .await?,
    ))
}

/// Removes a member from an application. In a `membersOnly` application
/// their sessions there end, on every server within a second.
#[utoipa::path(
    delete, path = "/admin/applications/{id}/members/{email}", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("id" = String, Path, description = "Application id"),
        ("email" = String, Path, description = "The member's email"),
    ),
    responses(
        (status = 200, description = "The application with its remaining members", body = ApplicationResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such application or user, or not a member", body = ErrorResponse),
    )
)]
pub async fn remove_member(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPathPair(id, email): AdminPathPair<ApplicationId>,
) -> Result<Json<ApplicationResponse>, ApiError> {
    Ok(Json(admin.remove_application_member(&id, &email).await?))
}
