//! Keys: the support console's list (filters, search by id, keyset pages)
//! and creation, and one key's page and actions (rotate, revoke, disable,
//! enable) for admins and for the owners of its application. Which key a
//! viewer may see is decided once, in `key_for`.

use super::chart::{usage_chart, Chart};
use super::pages::{html, Frame, PageError};
use super::session::{ConsoleForm, Role, Support, Viewer};
use super::views::KeyRow;
use crate::extract::QueryParams;
use crate::state::AppState;
use askama::Template;
use assetpool_core::admin::{
    key_response, Admin, CreateApiKey, IssuedApiKey, DEFAULT_ROTATION_GRACE_SECONDS,
    MAX_ROTATION_GRACE_SECONDS,
};
use assetpool_core::ids::{ApplicationId, KeyId};
use assetpool_core::period::Period;
use assetpool_core::store::{ApiKeyRecord, UsageResolution};
use assetpool_core::Environment;
use assetpool_wire::ApiKeyResponse;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    environment: String,
    application: String,
    search: String,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/key.html")]
struct KeyPage {
    frame: Frame,
    key: KeyRow,
    admin: bool,
    chart: Chart,
    bucket: &'static str,
}

#[derive(Template)]
#[template(path = "console/key_created.html")]
struct KeyCreatedPage {
    frame: Frame,
    key: KeyRow,
    secret: String,
    verb: &'static str,
}

/// The key `id` if `viewer` may see it, with the operations acting as the
/// viewer: admins see every key (an unknown one is 404); owners only the
/// keys of their applications (anything else, unknown keys included, is the
/// same 403); other users none.
async fn key_for(
    viewer: &Viewer,
    state: &AppState,
    id: &KeyId,
) -> Result<(Admin, ApiKeyRecord), PageError> {
    let admin = viewer.admin(state);
    let found = match viewer.role() {
        Role::None => return Err(PageError::no_access()),
        Role::Support => admin
            .api_key_record(id)
            .await?
            .ok_or_else(PageError::not_found)?,
        Role::Owner => admin
            .api_key_record(id)
            .await?
            .filter(|key| viewer.session.owns(&key.application_id))
            .ok_or_else(PageError::forbidden)?,
    };
    Ok((admin, found))
}

/// `GET /console/keys`: `environment`, `application` and `q` (a key id)
/// filter; `cursor` pages (keyset: the last key of the previous page).
pub async fn list_keys(support: Support) -> Result<Response, PageError> {
    let page = support.creation_page()?;
    let Support {
        viewer,
        admin,
        query,
    } = support;
    let environment = query
        .get("environment")
        .map(Environment::parse)
        .transpose()
        .map_err(|_| PageError::bad_request("Unknown environment."))?;
    let found: Vec<ApiKeyResponse> = if let Some(search) = query.get("q") {
        match admin.api_key_record(&KeyId::from(search.trim())).await? {
            Some(key) => vec![admin.api_key(&key.id).await?],
            None => Vec::new(),
        }
    } else if let Some(application) = query.get("application") {
        let application = ApplicationId::from(application.trim());
        admin.list_application_api_keys(&application, &page).await?
    } else {
        admin.list_api_keys(environment, &page).await?
    };
    let (keys, next) = Support::cut(found, |key| (key.created_at, key.id.clone()));
    let page = KeysPage {
        frame: Frame::new("Keys", &viewer),
        keys: keys.iter().map(KeyRow::from).collect(),
        environment: environment.map_or("", Environment::as_str).to_owned(),
        application: query.get("application").unwrap_or_default().to_owned(),
        search: query.get("q").unwrap_or_default().to_owned(),
        next,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /console/keys`: creates a key and shows its secret, once.
pub async fn create_key(
    State(state): State<AppState>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let admin = form.support_admin(&state)?;
    let environment = Environment::parse(form.field("environment").unwrap_or_default())
        .map_err(|_| PageError::bad_request("Choose an environment."))?;
    let expires_in = form
        .field("expires_in")
        .map(|text| Period::parse(text).map(Period::duration))
        .transpose()
        .map_err(|_| PageError::bad_request("The expiry is not a duration such as 90d."))?;
    let issued = admin
        .create_api_key(CreateApiKey {
            application_id: form.field("application").map(ApplicationId::from),
            expires_in,
            ..CreateApiKey::new(form.field("name").unwrap_or_default(), environment)
        })
        .await?;
    Ok(secret_page(
        &form.viewer,
        &issued,
        "created",
        StatusCode::CREATED,
    ))
}

/// The page that shows a new key's secret: the only time it is shown.
fn secret_page(
    viewer: &Viewer,
    issued: &IssuedApiKey,
    verb: &'static str,
    status: StatusCode,
) -> Response {
    let key = key_response(&issued.record, issued.record.created_at);
    let page = KeyCreatedPage {
        frame: Frame::new("New key", viewer),
        key: KeyRow::from(&key),
        secret: issued.secret.expose().to_owned(),
        verb,
    };
    html(status, &page)
}

/// `GET /console/keys/{id}`: the key and its usage chart (`bucket`:
/// `minute` for the last hour, `hour` for 48 hours (default), `day` for 30
/// days).
pub async fn show_key(
    viewer: Viewer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = QueryParams::parse(raw.as_deref())?;
    let (resolution, period) = match query.get("bucket").unwrap_or("hour") {
        "minute" => (UsageResolution::Minute, Duration::hours(1)),
        "hour" => (UsageResolution::Hour, Duration::hours(48)),
        "day" => (UsageResolution::Day, Duration::days(30)),
        _ => {
            return Err(PageError::bad_request(
                "The interval is minute, hour or day.",
            ))
        }
    };
    let (admin, record) = key_for(&viewer, &state, &KeyId::from(id)).await?;
    let key = admin.api_key(&record.id).await?;
    let usage = admin.key_usage(&record.id, resolution, period).await?;
    let page = KeyPage {
        frame: Frame::new(format!("Key {}", key.name), &viewer),
        key: KeyRow::from(&key),
        admin: viewer.role() == Role::Support,
        chart: usage_chart(&usage.series, usage.since, admin.now()),
        bucket: resolution.as_str(),
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /console/keys/{id}/rotate`: a successor key (its secret shown
/// once); the old one works for the grace period (`grace`, default 24h).
pub async fn rotate_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let (admin, record) = key_for(&form.viewer, &state, &KeyId::from(id)).await?;
    let grace = match form.field("grace") {
        Some(text) => assetpool_core::period::parse_seconds(text)
            .ok()
            .filter(|seconds| *seconds <= MAX_ROTATION_GRACE_SECONDS)
            .and_then(|seconds| i64::try_from(seconds).ok())
            .map(Duration::seconds)
            .ok_or_else(|| {
                PageError::bad_request(
                    "The grace period is a duration of at most a year, such as 24h (0s for none).",
                )
            })?,
        None => Duration::seconds(DEFAULT_ROTATION_GRACE_SECONDS),
    };
    let issued = admin.rotate_api_key(&record.id, grace).await?;
    Ok(secret_page(
        &form.viewer,
        &issued,
        "rotated",
        StatusCode::CREATED,
    ))
}

/// `POST /console/keys/{id}/revoke`: at once, with an optional reason.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let (admin, record) = key_for(&form.viewer, &state, &KeyId::from(id)).await?;
    admin
        .revoke_api_key(&record.id, form.field("reason"))
        .await?;
    Ok(back_to(&record.id))
}

/// `POST /console/keys/{id}/disable` (admins).
pub async fn disable_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    set_disabled(&state, &form, &KeyId::from(id), true).await
}

/// `POST /console/keys/{id}/enable` (admins).
pub async fn enable_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    set_disabled(&state, &form, &KeyId::from(id), false).await
}

async fn set_disabled(
    state: &AppState,
    form: &ConsoleForm,
    id: &KeyId,
    disabled: bool,
) -> Result<Response, PageError> {
    form.viewer.require_support()?;
    let (admin, record) = key_for(&form.viewer, state, id).await?;
    admin.set_api_key_disabled(&record.id, disabled).await?;
    Ok(back_to(&record.id))
}

/// 303 to a key's page.
fn back_to(id: &KeyId) -> Response {
    Redirect::to(&format!("/console/keys/{id}")).into_response()
}
