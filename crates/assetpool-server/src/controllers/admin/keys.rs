//! `/admin/keys`: issue, list, show, rotate, revoke and change API keys, and
//! read their usage.

use super::key_lifecycle::{parse_allowed_cidrs, parse_expires_at, parse_metadata};
use super::{
    creation_page, cut_page, scope_set, AdminAuthenticated, AdminPath, OptionalJson, QueryParams,
};
use crate::controllers::no_store;
use crate::error::ApiError;
use crate::extract::StrictJson;
use assetpool_core::admin::{Admin, CreateApiKey, DEFAULT_ROTATION_GRACE_SECONDS};
use assetpool_core::ids::{ApplicationId, KeyId};
use assetpool_core::limits::{KeyLimits, Quota, RateLimit, RateSpec};
use assetpool_core::period::Period;
use assetpool_core::store::{ApiKeyUpdate, UsageResolution};
use assetpool_core::Environment;
use assetpool_wire::{
    AdminCreateKeyRequest, AdminRevokeKeyRequest, AdminRotateKeyRequest, AdminUpdateKeyRequest,
    AdminUpdateKeyResponse, ApiKeyCreatedResponse, ApiKeyPage, ApiKeyResponse, ErrorResponse,
    KeyUsageResponse,
};
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Duration;
use secrecy::ExposeSecret as _;

/// Longest key lifetime accepted (100 years, as the command line).
const MAX_EXPIRES_IN_SECONDS: u64 = 3_153_600_000;
use assetpool_core::admin::MAX_ROTATION_GRACE_SECONDS as MAX_GRACE_SECONDS;
/// Largest burst accepted (as the command line).
const MAX_BURST: u32 = 1_000_000;

/// Lists API keys, oldest first.
#[utoipa::path(
    get, path = "/admin/keys", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("environment" = Option<String>, Query, description = "Only keys of this environment (development, staging, production)"),
        ("limit" = Option<u32>, Query, description = "Keys per page, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The nextCursor of the previous page (opaque: creation time and id of its last key)"),
    ),
    responses(
        (status = 200, description = "One page of keys", body = ApiKeyPage),
        (status = 400, description = "Bad query parameter", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
    )
)]
pub async fn list_keys(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<ApiKeyPage>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let environment = query
        .get("environment")
        .map(|text| {
            Environment::parse(text).map_err(|_| {
                ApiError::invalid_request("environment must be development, staging or production")
            })
        })
        .transpose()?;
    let limit = query.limit()?;
    let page = creation_page(query.get("cursor"), limit)?;
    let keys = admin.list_api_keys(environment, &page).await?;
    let order = |key: &ApiKeyResponse| (key.created_at.timestamp_millis(), key.id.clone());
    let (items, next_cursor) = cut_page(keys, limit, order);
    Ok(Json(ApiKeyPage { items, next_cursor }))
}

/// Issues a key; its secret is in this answer only.
#[utoipa::path(
    post, path = "/admin/keys", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    request_body = AdminCreateKeyRequest,
    responses(
        (status = 201, description = "Issued (the key is shown once)", body = ApiKeyCreatedResponse),
        (status = 400, description = "Malformed body or bad value", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such application", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
    )
)]
pub async fn create_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    StrictJson(request): StrictJson<AdminCreateKeyRequest>,
) -> Result<Response, ApiError> {
    let environment = Environment::parse(request.environment.trim()).map_err(|_| {
        ApiError::invalid_request("environment must be development, staging or production")
    })?;
    let expires_in = request
        .expires_in
        .map(|seconds| {
            (1..=MAX_EXPIRES_IN_SECONDS)
                .contains(&seconds)
                .then(|| seconds_duration(seconds))
                .ok_or_else(|| {
                    ApiError::invalid_request("expiresIn must be 1 to 3153600000 seconds")
                })
        })
        .transpose()?;
    let rate = request.rate_limit.as_deref().map(parse_rate).transpose()?;
    let quota = request.quota.as_deref().map(parse_quota).transpose()?;
    let scopes = request.scopes.as_deref().map(scope_set).transpose()?;
    let limits = new_limits(
        KeyLimits::default(),
        rate.map(Some),
        request.burst,
        quota.map(Some),
    )?;
    let metadata = request.metadata.map(parse_metadata).transpose()?;
    let allowed_networks = request
        .allowed_cidrs
        .as_deref()
        .map(parse_allowed_cidrs)
        .transpose()?;
    let issued = admin
        .create_api_key(CreateApiKey {
            name: request.name,
            environment,
            application_id: request.application.map(ApplicationId::from),
            expires_in,
            limits,
            metadata,
            owner: request.owner,
            allowed_networks,
            scopes,
        })
        .await?;
    Ok(no_store((StatusCode::CREATED, Json(issued.to_response()))))
}

/// Shows one key.
#[utoipa::path(
    get, path = "/admin/keys/{id}", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "The key", body = ApiKeyResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn show_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(admin.api_key(&id).await?))
}

/// Issues a successor key; the old one works until the grace period ends.
#[utoipa::path(
    post, path = "/admin/keys/{id}/rotate", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<AdminRotateKeyRequest>, description = "Optional; grace defaults to 86400 seconds"),
    responses(
        (status = 201, description = "The successor (its key is shown once)", body = ApiKeyCreatedResponse),
        (status = 400, description = "Bad grace, or the key was already rotated, revoked, disabled or has expired", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn rotate_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
    OptionalJson(request): OptionalJson<AdminRotateKeyRequest>,
) -> Result<Response, ApiError> {
    let grace = request
        .grace
        .unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS.unsigned_abs());
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid_request(
            "grace must be 0 to 31536000 seconds",
        ));
    }
    let issued = admin.rotate_api_key(&id, seconds_duration(grace)).await?;
    let response: ApiKeyCreatedResponse = issued.to_response();
    Ok(no_store((StatusCode::CREATED, Json(response))))
}

/// Revokes a key at once (every server refuses it within a second).
#[utoipa::path(
    post, path = "/admin/keys/{id}/revoke", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<AdminRevokeKeyRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Revoked", body = ApiKeyResponse),
        (status = 400, description = "Bad reason", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn revoke_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
    OptionalJson(request): OptionalJson<AdminRevokeKeyRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(
        admin.revoke_api_key(&id, request.reason.as_deref()).await?,
    ))
}

/// Changes a key's name, limits, expiry, metadata, owner, allow-list, scopes
/// or owner webhook; the fields given change. Narrowed scopes apply to the
/// key's live tokens within a second.
#[utoipa::path(
    patch, path = "/admin/keys/{id}", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(("id" = String, Path, description = "Key id")),
    request_body = AdminUpdateKeyRequest,
    responses(
        (status = 200, description = "Changed (a new webhook's secret is shown once)", body = AdminUpdateKeyResponse),
        (status = 400, description = "Nothing to change, malformed body or bad value (an expiry in the past, or on a rotated or revoked key)", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn update_key(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
    StrictJson(request): StrictJson<AdminUpdateKeyRequest>,
) -> Result<Response, ApiError> {
    let webhook = request
        .webhook
        .clone()
        .map(|url| {
            url.as_deref()
                .map(assetpool_core::admin::validate_webhook_url)
                .transpose()
        })
        .transpose()?;
    let update = key_update(&admin, &id, request).await?;
    if update.is_empty() && webhook.is_none() {
        return Err(ApiError::invalid_request(
            "nothing to change: give name, rateLimit, burst, quota, expiresAt, metadata, owner, \
             allowedCidrs, scopes or webhook",
        ));
    }
    let mut key = None;
    if !update.is_empty() {
        key = Some(admin.update_api_key(&id, update).await?);
    }
    let webhook_secret = match webhook {
        Some(url) => admin.set_key_webhook(&id, url.as_deref()).await?,
        None => None,
    };
    let key = match key {
        Some(key) => key,
        None => admin.api_key(&id).await?,
    };
    let response = AdminUpdateKeyResponse {
        key,
        webhook_secret: webhook_secret.map(|secret| secret.expose_secret().to_owned()),
    };
    Ok(no_store(Json(response)))
}

/// The key update a PATCH body (or the web console's key form) asks for
/// (its webhook aside), every field checked; the limits are applied to the
/// key's current ones.
pub(crate) async fn key_update(
    admin: &Admin,
    id: &KeyId,
    request: AdminUpdateKeyRequest,
) -> Result<ApiKeyUpdate, ApiError> {
    let rate = request
        .rate_limit
        .map(|rate| rate.as_deref().map(parse_rate).transpose())
        .transpose()?;
    let quota = request
        .quota
        .map(|quota| quota.as_deref().map(parse_quota).transpose())
        .transpose()?;
    let expires_at = request
        .expires_at
        .map(|time| time.as_deref().map(parse_expires_at).transpose())
        .transpose()?;
    let metadata = request
        .metadata
        .map(|value| value.map(parse_metadata).transpose())
        .transpose()?;
    let allowed_networks = request
        .allowed_cidrs
        .map(|cidrs| cidrs.as_deref().map(parse_allowed_cidrs).transpose())
        .transpose()?;
    let scopes = request
        .scopes
        .map(|scopes| scopes.as_deref().map(scope_set).transpose())
        .transpose()?;
    let limits = if rate.is_some() || request.burst.is_some() || quota.is_some() {
        let current = admin.api_key_limits(id).await?;
        Some(new_limits(current, rate, request.burst, quota)?)
    } else {
        None
    };
    Ok(ApiKeyUpdate {
        name: request.name,
        limits,
        expires_at,
        metadata,
        owner: request.owner,
        allowed_networks,
        scopes,
    })
}

/// A key's usage: requests by outcome, logins, distinct client addresses.
#[utoipa::path(
    get, path = "/admin/keys/{id}/usage", tag = "admin",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    params(
        ("id" = String, Path, description = "Key id"),
        ("since" = Option<String>, Query, description = "How far back: a number and an optional unit s, m, h, d or w, bare for seconds (default 24h)"),
        ("bucket" = Option<String>, Query, description = "minute (kept 48 h), hour (kept 90 days) or day (kept 2 years); default hour, or day beyond 90 days"),
    ),
    responses(
        (status = 200, description = "The usage", body = KeyUsageResponse),
        (status = 400, description = "Bad period or bucket, or a period longer than the bucket is kept", body = ErrorResponse),
        (status = 401, description = "Bad API key or token", body = ErrorResponse),
        (status = 403, description = "Not an admin (forbidden)", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    )
)]
pub async fn key_usage(
    AdminAuthenticated { admin, .. }: AdminAuthenticated,
    AdminPath(id): AdminPath<KeyId>,
    RawQuery(query): RawQuery,
) -> Result<Json<KeyUsageResponse>, ApiError> {
    let query = QueryParams::parse(query.as_deref())?;
    let since = query
        .period("since")?
        .map_or_else(|| Duration::hours(24), Period::duration);
    let bucket = match query.get("bucket") {
        Some(text) => UsageResolution::parse(text)
            .ok_or_else(|| ApiError::invalid_request("bucket must be minute, hour or day"))?,
        None if since > UsageResolution::Hour.retention() => UsageResolution::Day,
        None => UsageResolution::Hour,
    };
    Ok(Json(admin.key_usage(&id, bucket, since).await?))
}

fn seconds_duration(seconds: u64) -> Duration {
    Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000))
}

fn parse_rate(text: &str) -> Result<RateSpec, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid_request("rateLimit is COUNT/s, COUNT/min or COUNT/h (for example 50/s)")
    })
}

fn parse_quota(text: &str) -> Result<Quota, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid_request(
            "quota is COUNT/hour, COUNT/day or COUNT/month (for example 100000/day)",
        )
    })
}

/// `current` with a rate (`Some(None)` removes it), burst and quota applied,
/// as `assetpool keys update` applies its options.
fn new_limits(
    current: KeyLimits,
    rate: Option<Option<RateSpec>>,
    burst: Option<u32>,
    quota: Option<Option<Quota>>,
) -> Result<KeyLimits, ApiError> {
    if burst.is_some_and(|burst| !(1..=MAX_BURST).contains(&burst)) {
        return Err(ApiError::invalid_request("burst must be 1 to 1000000"));
    }
    let rate = match (rate, burst) {
        (Some(Some(spec)), burst) => Some(spec.with_burst(burst)),
        (Some(None), None) => None,
        (Some(None), Some(_)) => {
            return Err(ApiError::invalid_request(
                "burst cannot be set while removing the rate limit",
            ))
        }
        (None, Some(burst)) => match current.rate {
            Some(rate) => Some(RateLimit { burst, ..rate }),
            None => return Err(ApiError::invalid_request("burst needs a rateLimit")),
        },
        (None, None) => current.rate,
    };
    let quota = match quota {
        Some(quota) => quota,
        None => current.quota,
    };
    Ok(KeyLimits { rate, quota })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_like_the_command_line() {
        let rate: RateSpec = "50/s".parse().unwrap();
        let set = new_limits(KeyLimits::default(), Some(Some(rate)), Some(5), None).unwrap();
        assert_eq!(set.rate.map(|rate| rate.burst), Some(5));
        let burst_only = new_limits(set, None, Some(9), None).unwrap();
        assert_eq!(burst_only.rate.map(|rate| rate.requests), Some(50));
        assert_eq!(burst_only.rate.map(|rate| rate.burst), Some(9));
        let removed = new_limits(set, Some(None), None, None).unwrap();
        assert!(removed.rate.is_none());
        assert!(new_limits(KeyLimits::default(), None, Some(3), None).is_err());
        assert!(new_limits(set, Some(None), Some(3), None).is_err());
        assert!(new_limits(set, None, Some(0), None).is_err());
    }
}
