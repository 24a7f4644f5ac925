//! Alerts (with acknowledge), the audit log and the signing keys (with
//! rotation): the support console's monitoring pages. Lists page by sequence (`before`, a
//! cursor the previous page gave).

use super::pages::{html, Frame, PageError};
use super::session::{ConsoleForm, Support, PAGE_SIZE};
use super::views::{when, when_or, AlertRow, AuditRow};
use crate::state::AppState;
use askama::Template;
use assetpool_core::ids::AlertId;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

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

/// `GET /console/alerts`: newest first.
pub async fn list_alerts(support: Support) -> Result<Response, PageError> {
    let listed = support
        .admin
        .list_alerts(None, support.before()?, PAGE_SIZE)
        .await?;
    let page = AlertsPage {
        frame: Frame::new("Alerts", &support.viewer),
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
    form.support_admin(&state)?
        .ack_alert(&AlertId::from(id))
        .await?;
    Ok(Redirect::to("/console/alerts").into_response())
}

/// `GET /console/audit`: newest first.
pub async fn list_audit(support: Support) -> Result<Response, PageError> {
    let listed = support
        .admin
        .list_audit(support.before()?, PAGE_SIZE)
        .await?;
    let page = AuditPage {
        frame: Frame::new("Audit log", &support.viewer),
        entries: listed.items.iter().map(AuditRow::from).collect(),
        next: listed.next_before,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `GET /console/signing-keys`.
pub async fn list_signing_keys(support: Support) -> Result<Response, PageError> {
    let keys = support.admin.signing_keys().await?;
    let page = SigningKeysPage {
        frame: Frame::new("Signing keys", &support.viewer),
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

/// `POST /console/signing-keys/rotate` (admins): a new key signs from now
/// on; the old one stays published until its last token has expired, so
/// nobody is signed out. Audited as the admin, like `signing-keys rotate`.
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let admin = form.support_admin(&state)?;
    admin.rotate_signing_key().await?;
    Ok(Redirect::to("/console/signing-keys").into_response())
}
