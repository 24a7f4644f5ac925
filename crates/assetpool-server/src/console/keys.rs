//! Keys: the support console's list (filters by environment, application
//! and state, search by id, prefix or name, keyset pages) and creation, and
//! one key's page and actions (rotate, revoke, disable, enable; for admins
//! also the edit of its limits, scopes, allow-list and metadata) for admins
//! and for the owners of its application. Which key a viewer may see is
//! decided once, in `key_for`.

use super::chart::{usage_chart, Chart};
use super::pages::{html, Frame, PageError};
use super::session::{ConsoleForm, Role, Support, Viewer};
use super::views::KeyRow;
use crate::controllers::admin::keys::key_update;
use crate::extract::QueryParams;
use crate::state::AppState;
use askama::Template;
use assetpool_core::admin::{
    key_response, Admin, CreateApiKey, IssuedApiKey, DEFAULT_ROTATION_GRACE_SECONDS,
    MAX_ROTATION_GRACE_SECONDS,
};
use assetpool_core::ids::{ApplicationId, KeyId};
use assetpool_core::period::Period;
use assetpool_core::store::{
    ApiKeyRecord, KeyFilter, KeySearch, KeyStatusFilter, UsageResolution, MAX_KEY_SEARCH_BYTES,
};
use assetpool_core::Environment;
use assetpool_wire::{AdminUpdateKeyRequest, ApiKeyResponse};
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
    status: &'static str,
}

#[derive(Template)]
#[template(path = "console/key.html")]
struct KeyPage {
    frame: Frame,
    key: KeyRow,
    admin: bool,
    chart: Chart,
    bucket: &'static str,
    edit: KeyEdit,
}

/// A key's editable settings as the edit forms show them (the text each
/// field takes back).
struct KeyEdit {
    rate_limit: String,
    burst: String,
    quota: String,
    scopes: String,
    allowed_cidrs: String,
    metadata: String,
}

impl From<&ApiKeyResponse> for KeyEdit {
    fn from(key: &ApiKeyResponse) -> Self {
        KeyEdit {
            rate_limit: key.rate_limit.clone().unwrap_or_default(),
            burst: key.burst.map(|burst| burst.to_string()).unwrap_or_default(),
            quota: key.quota.clone().unwrap_or_default(),
            scopes: key
                .scopes
                .as_ref()
                .map(|scopes| scopes.join(" "))
                .unwrap_or_default(),
            allowed_cidrs: key
                .allowed_cidrs
                .as_ref()
                .map(|cidrs| cidrs.join(", "))
                .unwrap_or_default(),
            metadata: key
                .metadata
                .as_ref()
                .map(|metadata| serde_json::Value::Object(metadata.clone()).to_string())
                .unwrap_or_default(),
        }
    }
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

/// `GET /console/keys`: `q` (a key id, or the start of a key's prefix or
/// name, case as typed), `environment`, `application` and `status`
/// (`active`, `revoked`, `disabled`, `expired`; `all` or empty for every
/// key) filter; `cursor` pages (keyset: the last key of the previous page).
pub async fn list_keys(support: Support) -> Result<Response, PageError> {
    let page = support.creation_page()?;
    let Support {
        viewer,
        admin,
        query,
    } = support;
    let filter = key_filter(&query)?;
    let found = admin.filter_api_keys(&filter, &page).await?;
    let (keys, next) = Support::cut(found, |key| (key.created_at, key.id.clone()));
    let page = KeysPage {
        frame: Frame::new("Keys", &viewer),
        keys: keys.iter().map(KeyRow::from).collect(),
        environment: filter
            .environment
            .map_or("", Environment::as_str)
            .to_owned(),
        application: filter
            .application_id
            .as_ref()
            .map_or_else(String::new, ToString::to_string),
        search: filter
            .search
            .as_ref()
            .map_or_else(String::new, |search| search.text().to_owned()),
        next,
        status: filter.status.map_or("", KeyStatusFilter::as_str),
    };
    Ok(html(StatusCode::OK, &page))
}

/// The filters of the key list's query string; 400 for a value the form
/// does not offer.
fn key_filter(query: &QueryParams) -> Result<KeyFilter, PageError> {
    let given = |name: &str| {
        query
            .get(name)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    };
    let environment = given("environment")
        .map(Environment::parse)
        .transpose()
        .map_err(|_| PageError::bad_request("Unknown environment."))?;
    let status = match given("status") {
        None | Some("all") => None,
        Some(text) => Some(KeyStatusFilter::parse(text).ok_or_else(|| {
            PageError::bad_request("The status is active, revoked, disabled, expired or all.")
        })?),
    };
    let search = given("q")
        .map(|text| {
            KeySearch::parse(text).ok_or_else(|| {
                PageError::bad_request(format!(
                    "The search is at most {MAX_KEY_SEARCH_BYTES} bytes, without control \
                     characters."
                ))
            })
        })
        .transpose()?;
    Ok(KeyFilter {
        environment,
        application_id: given("application").map(ApplicationId::from),
        status,
        search,
    })
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
        edit: KeyEdit::from(&key),
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

/// `POST /console/keys/{id}/update` (admins): changes the settings whose
/// fields the form has (`rate_limit`, `burst`, `quota`, `scopes`,
/// `allowed_cidrs`, `metadata`; blank removes a setting), through the admin
/// API's own checks; a bad value is a 400 page that says why.
pub async fn update_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    form.viewer.require_support()?;
    let (admin, record) = key_for(&form.viewer, &state, &KeyId::from(id)).await?;
    let request = update_request(&form)?;
    let update = key_update(&admin, &record.id, request).await?;
    if update.is_empty() {
        return Err(PageError::bad_request("The form changes nothing."));
    }
    admin.update_api_key(&record.id, update).await?;
    Ok(back_to(&record.id))
}

/// The admin API's update request of the fields the form has: a blank one
/// removes its setting (scopes: unrestricted; allow-list: any address), an
/// absent one stays.
fn update_request(form: &ConsoleForm) -> Result<AdminUpdateKeyRequest, PageError> {
    let given = |name: &str| form.fields.get(name).map(|value| value.trim());
    let set_or_clear =
        |name: &str| given(name).map(|text| (!text.is_empty()).then(|| text.to_owned()));
    let rate_limit = set_or_clear("rate_limit");
    // Removing the rate removes its burst: a burst left in the form then
    // means nothing.
    let burst = given("burst")
        .filter(|text| !text.is_empty() && rate_limit != Some(None))
        .map(str::parse::<u32>)
        .transpose()
        .map_err(|_| PageError::bad_request("The burst is a whole number from 1 to 1000000."))?;
    let list = |name: &str, separators: &[char]| {
        set_or_clear(name).map(|text| {
            text.map(|text| {
                text.split(separators)
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
        })
    };
    let metadata = set_or_clear("metadata")
        .map(|text| {
            text.map(|text| serde_json::from_str::<serde_json::Value>(&text))
                .transpose()
        })
        .transpose()
        .map_err(|_| {
            PageError::bad_request(
                "The metadata is a JSON object, such as {\"team\": \"payments\"} (blank: none).",
            )
        })?;
    Ok(AdminUpdateKeyRequest {
        rate_limit,
        burst,
        quota: set_or_clear("quota"),
        scopes: list("scopes", &[' ', ',']),
        allowed_cidrs: list("allowed_cidrs", &[' ', ',']),
        metadata,
        ..AdminUpdateKeyRequest::default()
    })
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
