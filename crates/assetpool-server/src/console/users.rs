//! Users (admins): the list (keyset pages), creation, disable and enable,
//! unlock (clear the login throttle) and password reset, each through the
//! core's `Admin` as the signed-in admin.

use super::pages::{html, Frame, PageError};
use super::session::{ConsoleForm, Support};
use super::views::when;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;

/// A user as the list shows it.
struct UserRow {
    email: String,
    admin: bool,
    disabled: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    frame: Frame,
    users: Vec<UserRow>,
    next: Option<String>,
}

/// `GET /console/users`.
pub async fn list_users(support: Support) -> Result<Response, PageError> {
    let found = support.admin.list_users(&support.creation_page()?).await?;
    let (users, next) = Support::cut(found, |user| (user.created_at, user.id.clone()));
    let page = UsersPage {
        frame: Frame::new("Users", &support.viewer),
        users: users
            .iter()
            .map(|user| UserRow {
                email: user.email.clone(),
                admin: user.admin,
                disabled: user.disabled,
                created: when(user.created_at),
            })
            .collect(),
        next,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /console/users`: `email`, `password`, `admin` (checkbox).
pub async fn create_user(
    State(state): State<AppState>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    form.support_admin(&state)?
        .create_user(
            form.field("email").unwrap_or_default(),
            password(&form),
            form.field("admin").is_some(),
        )
        .await?;
    Ok(to_users())
}

/// `POST /console/users/{email}/{action}`: `disable`, `enable` or `unlock`.
pub async fn change_user(
    State(state): State<AppState>,
    Path((email, action)): Path<(String, String)>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    let admin = form.support_admin(&state)?;
    match action.as_str() {
        "disable" => admin.set_user_disabled(&email, true).await?,
        "enable" => admin.set_user_disabled(&email, false).await?,
        "unlock" => {
            admin.unlock_user(&email).await?;
        }
        _ => return Err(PageError::not_found()),
    }
    Ok(to_users())
}

/// `POST /console/users/password`: `email`, `password`; ends the user's
/// sessions, console sessions included.
pub async fn reset_password(
    State(state): State<AppState>,
    form: ConsoleForm,
) -> Result<Response, PageError> {
    form.support_admin(&state)?
        .set_password(form.field("email").unwrap_or_default(), password(&form))
        .await?;
    Ok(to_users())
}

/// The form's `password`, as typed (not trimmed).
fn password(form: &ConsoleForm) -> SecretString {
    SecretString::from(form.fields.get("password").cloned().unwrap_or_default())
}

fn to_users() -> Response {
    Redirect::to("/console/users").into_response()
}
