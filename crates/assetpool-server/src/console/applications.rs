//! The console's home and applications: the support overview (usage of
//! every key charted beside the open alerts), the list of applications
//! (admins: creation), one application's page with its members (admins:
//! add, change role, remove), keys, alerts and owner webhooks with their
//! deliveries (admins, and its owners: the owner view, read-only but for
//! their keys' own actions), and the page of a user with no console access.

use super::chart::{usage_chart, Chart};
use super::pages::{html, Frame, PageError};
use super::session::{ConsoleForm, Role, Support, Viewer};
use super::sign_in::sign_in_page;
use super::views::{when, AlertRow, KeyRow};
use crate::state::AppState;
use askama::Template;
use assetpool_core::admin::{Admin, OwnerWebhook};
use assetpool_core::ids::ApplicationId;
use assetpool_core::store::{CreationPage, DeliveryStatus, UsageResolution};
use assetpool_core::ApplicationRole;
use assetpool_wire::ApplicationResponse;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;

/// Keys shown on an application's page.
const APPLICATION_KEYS: u32 = 200;
/// Open alerts shown on the overview.
const OVERVIEW_ALERTS: u32 = 20;
/// Alerts shown on an application's page.
const APPLICATION_ALERTS: u32 = 50;
/// Owner webhooks shown on an application's page, and deliveries of each.
const APPLICATION_WEBHOOKS: u32 = 50;
const WEBHOOK_DELIVERIES: u32 = 10;

/// An application as lists show it.
struct ApplicationRow {
    id: String,
    name: String,
    members_only: bool,
    created: String,
    members: Vec<(String, String)>,
}

impl From<&ApplicationResponse> for ApplicationRow {
    fn from(application: &ApplicationResponse) -> Self {
        ApplicationRow {
            id: application.id.clone(),
            name: application.name.clone(),
            members_only: application.members_only,
            created: when(application.created_at),
            members: application
                .members
                .iter()
                .map(|member| (member.email.clone(), member.role.as_str().to_owned()))
                .collect(),
        }
    }
}

/// A delivery to an owner webhook as the application's page shows it.
struct DeliveryRow {
    id: String,
    alert_id: String,
    state: &'static str,
    attempts: u32,
    created: String,
    /// The next attempt (pending), or when it ended (delivered, given up).
    settled: String,
    last_error: String,
}

impl From<&DeliveryStatus> for DeliveryRow {
    fn from(delivery: &DeliveryStatus) -> Self {
        let (state, settled) = match (delivery.delivered_at, delivery.given_up_at) {
            (Some(at), _) => ("delivered", when(at)),
            (None, Some(at)) => ("given up", when(at)),
            (None, None) if delivery.attempts == 0 => ("queued", when(delivery.next_attempt_at)),
            (None, None) => ("retrying", when(delivery.next_attempt_at)),
        };
        DeliveryRow {
            id: delivery.id.clone(),
            alert_id: delivery.alert_id.to_string(),
            state,
            attempts: delivery.attempts,
            created: when(delivery.created_at),
            settled,
            last_error: delivery.last_error.clone().unwrap_or_default(),
        }
    }
}

/// A key's owner webhook: its URL (never its secret) and latest deliveries.
struct WebhookRow {
    key_id: String,
    key_name: String,
    url: String,
    deliveries: Vec<DeliveryRow>,
}

/// One chart of the overview.
struct OverviewChart {
    id: &'static str,
    heading: &'static str,
    chart: Chart,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Frame,
    alerts: Vec<AlertRow>,
    charts: Vec<OverviewChart>,
}

#[derive(Template)]
#[template(path = "console/applications.html")]
struct ApplicationsPage {
    frame: Frame,
    heading: &'static str,
    applications: Vec<ApplicationRow>,
    next: Option<String>,
    admin: bool,
}

#[derive(Template)]
#[template(path = "console/application.html")]
struct ApplicationPage {
    frame: Frame,
    application: ApplicationRow,
    keys: Vec<KeyRow>,
    admin: bool,
    alerts: Vec<AlertRow>,
    webhooks: Vec<WebhookRow>,
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct NoAccessPage {
    frame: Frame,
    heading: String,
    text: String,
}

/// `GET /console/`: the sign-in form without a session; else the overview
/// (admins), the viewer's applications (owners) or the no-access page.
pub async fn home(State(state): State<AppState>, request: Request) -> Result<Response, PageError> {
    let (mut parts, _) = request.into_parts();
    let Ok(viewer) = Viewer::from_request_parts(&mut parts, &state).await else {
        return Ok(sign_in_page(&parts, &state, StatusCode::OK, None));
    };
    match viewer.role() {
        Role::Support => overview(&viewer, &state).await,
        Role::Owner => owned_applications(&viewer, &state).await,
        Role::None => {
            let page = NoAccessPage {
                frame: Frame::new("No console access", &viewer),
                heading: "No console access".to_owned(),
                text: "Your account has no access to the console. Ask an administrator to make \
                       you an owner of your application."
                    .to_owned(),
            };
            Ok(html(StatusCode::FORBIDDEN, &page))
        }
    }
}

async fn overview(viewer: &Viewer, state: &AppState) -> Result<Response, PageError> {
    let admin = viewer.admin(state);
    // Three independent reads, side by side.
    let (listed, day, hour) = tokio::try_join!(
        async {
            admin
                .list_alerts(None, None, OVERVIEW_ALERTS)
                .await
                .map_err(PageError::from)
        },
        overview_chart(&admin, UsageResolution::Hour, Duration::hours(24)),
        overview_chart(&admin, UsageResolution::Minute, Duration::hours(1)),
    )?;
    let page = OverviewPage {
        frame: Frame::new("Overview", viewer),
        alerts: listed
            .items
            .iter()
            .map(AlertRow::from)
            .filter(|alert| alert.open)
            .collect(),
        charts: vec![
            OverviewChart {
                id: "day",
                heading: "Last 24 hours, per hour",
                chart: day,
            },
            OverviewChart {
                id: "hour",
                heading: "Last hour, per minute",
                chart: hour,
            },
        ],
    };
    Ok(html(StatusCode::OK, &page))
}

/// Requests and errors of every key over the last `period`.
async fn overview_chart(
    admin: &Admin,
    resolution: UsageResolution,
    period: Duration,
) -> Result<Chart, PageError> {
    let usage = admin.usage_overview(resolution, period).await?;
    Ok(usage_chart(&usage.series, usage.since, admin.now()))
}

async fn owned_applications(viewer: &Viewer, state: &AppState) -> Result<Response, PageError> {
    let admin = viewer.admin(state);
    let mut applications = Vec::new();
    for id in &viewer.session.owned_applications {
        applications.push(ApplicationRow::from(&admin.application(id).await?));
    }
    let page = ApplicationsPage {
        frame: Frame::new("My applications", viewer),
        heading: "My applications",
        applications,
        next: None,
        admin: false,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `GET /console/applications` (admins): creation order, keyset pages.
pub async fn list_applications(support: Support) -> Result<Response, PageError> {
    let found = support
        .admin
        .list_applications(&support.creation_page()?)
        .await?;
    let (applications, next) = Support::cut(found, |application| {
        (application.created_at, application.id.clone())
    });
    let page = ApplicationsPage {
        frame: Frame::new("Applications", &support.viewer),
        heading: "Applications",
        applications: applications.iter().map(ApplicationRow::from).collect(),
        next,
        admin: true,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /console/applications` (admins): `name`, `members_only`
/// (checkbox); then the new application's page.
pub async fn create_application(
    State(state): State<AppState>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let admin = form.support_admin(&state)?;
    let name = form
        .field("name")
        .ok_or_else(|| PageError::bad_request("Give the application a name."))?;
    let created = admin
        .create_application(name, form.field("members_only").is_some())
        .await?;
    Ok(to_application(&created))
}

/// `POST /console/applications/{id}/members` (admins): `email`, `role`
/// (`owner` or `member`): adds the user as a member, or changes the role
/// of a member.
pub async fn set_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let admin = form.support_admin(&state)?;
    let email = member_email(&form)?;
    let role = ApplicationRole::parse(form.field("role").unwrap_or_default())
        .map_err(|_| PageError::bad_request("The role is owner or member."))?;
    let changed = admin
        .add_application_member(&ApplicationId::from(id), email, role)
        .await?;
    Ok(to_application(&changed))
}

/// `POST /console/applications/{id}/members/remove` (admins): `email`.
pub async fn remove_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let admin = form.support_admin(&state)?;
    let email = member_email(&form)?;
    let changed = admin
        .remove_application_member(&ApplicationId::from(id), email)
        .await?;
    Ok(to_application(&changed))
}

fn member_email(form: &ConsoleForm) -> Result<&str, PageError> {
    form.field("email")
        .ok_or_else(|| PageError::bad_request("Give the member's email."))
}

/// 303 to an application's page (its stored id: nothing of the request's).
fn to_application(application: &ApplicationResponse) -> Response {
    Redirect::to(&format!("/console/applications/{}", application.id)).into_response()
}

/// `GET /console/applications/{id}`: admins see any (unknown: 404); owners
/// only theirs (anything else, unknown ones included: the same 403). The
/// page shows members, keys, the alerts about its keys and the keys' owner
/// webhooks with their latest deliveries.
pub async fn show_application(
    viewer: Viewer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = ApplicationId::from(id);
    match viewer.role() {
        Role::Support => {}
        Role::Owner if viewer.session.owns(&id) => {}
        Role::Owner => return Err(PageError::forbidden()),
        Role::None => return Err(PageError::no_access()),
    }
    let admin = viewer.admin(&state);
    // Independent reads, side by side.
    let page_of_keys = CreationPage {
        after: None,
        limit: APPLICATION_KEYS,
    };
    let (application, keys, alerts, webhooks) = tokio::try_join!(
        admin.application(&id),
        admin.list_application_api_keys(&id, &page_of_keys),
        admin.application_alerts(&id, None, APPLICATION_ALERTS),
        admin.application_webhooks(&id, APPLICATION_WEBHOOKS, WEBHOOK_DELIVERIES),
    )?;
    let keys: Vec<KeyRow> = keys.iter().map(KeyRow::from).collect();
    let page = ApplicationPage {
        frame: Frame::new(format!("Application {}", application.name), &viewer),
        application: ApplicationRow::from(&application),
        webhooks: webhooks
            .iter()
            .map(|webhook| webhook_row(webhook, &keys))
            .collect(),
        keys,
        admin: viewer.role() == Role::Support,
        alerts: alerts.items.iter().map(AlertRow::from).collect(),
    };
    Ok(html(StatusCode::OK, &page))
}

fn webhook_row(webhook: &OwnerWebhook, keys: &[KeyRow]) -> WebhookRow {
    WebhookRow {
        key_id: webhook.key_id.to_string(),
        key_name: keys
            .iter()
            .find(|key| key.id == webhook.key_id.as_str())
            .map(|key| key.name.clone())
            .unwrap_or_default(),
        url: webhook.url.clone(),
        deliveries: webhook.deliveries.iter().map(DeliveryRow::from).collect(),
    }
}
