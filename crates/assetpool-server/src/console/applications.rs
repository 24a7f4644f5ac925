//! The console's home and applications: the support overview, the list of
//! applications (admins), one application's page with its members and keys
//! (admins, and its owners: the owner view), and the page of a user with
//! no console access.

use super::pages::{html, Frame, PageError};
use super::session::{Role, Support, Viewer};
use super::sign_in::sign_in_page;
use super::views::{when, AlertRow, KeyRow};
use crate::state::AppState;
use askama::Template;
use assetpool_core::ids::ApplicationId;
use assetpool_core::store::CreationPage;
use assetpool_wire::ApplicationResponse;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

/// Keys shown on an application's page.
const APPLICATION_KEYS: u32 = 200;
/// Open alerts shown on the overview.
const OVERVIEW_ALERTS: u32 = 20;

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

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Frame,
    alerts: Vec<AlertRow>,
}

#[derive(Template)]
#[template(path = "console/applications.html")]
struct ApplicationsPage {
    frame: Frame,
    heading: &'static str,
    applications: Vec<ApplicationRow>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/application.html")]
struct ApplicationPage {
    frame: Frame,
    application: ApplicationRow,
    keys: Vec<KeyRow>,
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
    let listed = viewer
        .admin(state)
        .list_alerts(None, None, OVERVIEW_ALERTS)
        .await?;
    let page = OverviewPage {
        frame: Frame::new("Overview", viewer),
        alerts: listed
            .items
            .iter()
            .map(AlertRow::from)
            .filter(|alert| alert.open)
            .collect(),
    };
    Ok(html(StatusCode::OK, &page))
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
    };
    Ok(html(StatusCode::OK, &page))
}

/// `GET /console/applications/{id}`: admins see any (unknown: 404); owners
/// only theirs (anything else, unknown ones included: the same 403).
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
    let application = admin.application(&id).await?;
    let keys = admin
        .list_application_api_keys(
            &id,
            &CreationPage {
                after: None,
                limit: APPLICATION_KEYS,
            },
        )
        .await?;
    let page = ApplicationPage {
        frame: Frame::new(format!("Application {}", application.name), &viewer),
        application: ApplicationRow::from(&application),
        keys: keys.iter().map(KeyRow::from).collect(),
    };
    Ok(html(StatusCode::OK, &page))
}
