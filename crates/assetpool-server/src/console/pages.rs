//! Rendering: the frame every page shares, HTML answers, and the error
//! pages ([`PageError`]: 403 for what is not the viewer's, the no-access
//! page, the CSRF refusal, and every error of the core with its contract
//! status). Templates are askama's (compiled in, HTML auto-escaped) under
//! `templates/console/`.

use super::session::{Role, Viewer};
use crate::error::ApiError;
use askama::Template;
use assetpool_core::ServiceError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The version in asset paths: a new build gets new URLs, so assets can be
/// cached for a year.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The signed-in user as the frame shows it.
#[derive(Debug, Clone)]
pub struct FrameUser {
    /// Email.
    pub email: String,
    /// Support console.
    pub admin: bool,
    /// Owner view.
    pub owner: bool,
    /// The CSRF token of the sign-out form (and of the page's forms).
    pub csrf: String,
}

/// What every page shares: title, asset version, the signed-in user.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The page's title.
    pub title: String,
    /// See [`ASSET_VERSION`].
    pub version: &'static str,
    /// The signed-in user, if any.
    pub user: Option<FrameUser>,
}

impl Frame {
    /// The frame of a page seen by `viewer`.
    pub fn new(title: impl Into<String>, viewer: &Viewer) -> Self {
        let role = viewer.role();
        Frame {
            title: title.into(),
            version: ASSET_VERSION,
            user: Some(FrameUser {
                email: viewer.session.user.email.clone(),
                admin: role == Role::Support,
                owner: role == Role::Owner,
                csrf: viewer.csrf_token(),
            }),
        }
    }

    /// The frame of a page without a signed-in user.
    pub fn anonymous(title: impl Into<String>) -> Self {
        Frame {
            title: title.into(),
            version: ASSET_VERSION,
            user: None,
        }
    }

    /// The CSRF token for the page's forms (empty without a user).
    pub fn csrf(&self) -> &str {
        self.user.as_ref().map_or("", |user| user.csrf.as_str())
    }
}

/// Renders `page` as an HTML answer with `status`.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page that only says something: errors, refusals, no access.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    /// The frame.
    pub frame: Frame,
    /// The heading.
    pub heading: String,
    /// The sentence under it.
    pub text: String,
}

/// An error answered as a page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    heading: &'static str,
    text: String,
    retry_after_seconds: Option<u64>,
}

impl PageError {
    fn new(status: StatusCode, heading: &'static str, text: impl Into<String>) -> Self {
        PageError {
            status,
            heading,
            text: text.into(),
            retry_after_seconds: None,
        }
    }

    /// 403, the same for what does not exist and what is not the viewer's.
    pub fn forbidden() -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            "Not available",
            "This page does not exist or is not yours to see.",
        )
    }

    /// 403 for a user who is neither an admin nor an application's owner.
    pub fn no_access() -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            "No console access",
            "Your account has no access to the console. Ask an administrator to make you an \
             owner of your application.",
        )
    }

    /// 403 for a state-changing request without the session's CSRF token.
    pub fn csrf() -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The form's security token is missing or wrong, or your session ended. \
             Reload the page (sign in again if asked) and retry.",
        )
    }

    /// 404 (admins only: owners get [`PageError::forbidden`]).
    pub fn not_found() -> Self {
        PageError::new(StatusCode::NOT_FOUND, "Not found", "There is nothing here.")
    }

    /// 400 with a sentence of our own (never an echo of input).
    pub fn bad_request(text: impl Into<String>) -> Self {
        PageError::new(StatusCode::BAD_REQUEST, "Invalid request", text)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        let (heading, text) = if status.is_server_error() {
            (
                "Temporarily unavailable",
                "Something went wrong on our side. Try again in a moment.".to_owned(),
            )
        } else if status == StatusCode::NOT_FOUND {
            ("Not found", error.message().to_owned())
        } else {
            ("Refused", error.message().to_owned())
        };
        PageError {
            status,
            heading,
            text,
            retry_after_seconds: error.retry_after_seconds(),
        }
    }
}

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        PageError::from(ApiError::from(error))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = MessagePage {
            frame: Frame::anonymous(self.heading),
            heading: self.heading.to_owned(),
            text: self.text,
        };
        let mut response = html(self.status, &page);
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
