//! Alerts (with acknowledge), the audit log and the signing keys: the
//! support console's monitoring pages. Lists page by sequence (`before`, a
//! cursor the previous page gave).

use super::pages::{html, Frame, PageError};
use super::session::{ConsoleForm, Viewer};
use super::views::{when, when_or, AlertRow, AuditRow};
use crate::extract::QueryParams;
use crate::state::AppState;
use askama::Template;
use assetpool_core::ids::AlertId;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

/// Entries on one page.
const PAGE_SIZE: u32 = 50;

#[derive(Template)]
#[template(path = "console/alerts.html")]
struct AlertsPage {
    frame: Frame,
    alerts: Vec<AlertRow>,
    next: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    entries: Vec<AuditRow>,
    next: Option<i64>,
}

/// A signing key as its page shows it.
struct SigningKeyRow {
    kid: String,
    algorithm: String,
    status: String,
    created: String,
    retires: String,
}

#[derive(Template)]
#[template(path = "console/signing_keys.html")]
struct SigningKeysPage {
    frame: Frame,
    keys: Vec<SigningKeyRow>,
}

/// The `before` cursor of a sequence-paged list.
fn before(query: &QueryParams) -> Result<Option<i64>, PageError> {
    query
        .get("before")
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| PageError::bad_request("The page cursor is not one this console gave."))
}

/// `GET /console/alerts`: newest first.
pub async fn list_alerts(
    viewer: Viewer,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = QueryParams::parse(raw.as_deref())?;
    viewer.require_support()?;
    let listed = viewer
        .admin(&state)
        .list_alerts(None, before(&query)?, PAGE_SIZE)
        .await?;
    let page = AlertsPage {
        frame: Frame::new("Alerts", &viewer),
        alerts: listed.items.iter().map(AlertRow::from).collect(),
        next: listed.next_before,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /console/alerts/{id}/ack`.
pub async fn ack_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    form.viewer.require_support()?;
    form.viewer
        .admin(&state)
        .ack_alert(&AlertId::from(id))
        .await?;
    Ok(Redirect::to("/console/alerts").into_response())
}

/// `GET /console/audit`: newest first.
pub async fn list_audit(
    viewer: Viewer,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = QueryParams::parse(raw.as_deref())?;
    viewer.require_support()?;
    let listed = viewer
        .admin(&state)
        .list_audit(before(&query)?, PAGE_SIZE)
        .await?;
    let page = AuditPage {
        frame: Frame::new("Audit log", &viewer),
        entries: listed.items.iter().map(AuditRow::from).collect(),
        next: listed.next_before,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `GET /console/signing-keys`.
pub async fn list_signing_keys(
    viewer: Viewer,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    viewer.require_support()?;
    let keys = viewer.admin(&state).signing_keys().await?;
    let page = SigningKeysPage {
        frame: Frame::new("Signing keys", &viewer),
        keys: keys
            .iter()
            .map(|key| SigningKeyRow {
                kid: key.kid.clone(),
                algorithm: key.algorithm.clone(),
                status: serde_json::to_value(key.status)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                created: when(key.created_at),
                retires: when_or(key.retires_at, "—"),
            })
            .collect(),
    };
    Ok(html(StatusCode::OK, &page))
}
