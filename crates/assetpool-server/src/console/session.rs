//! Who is signed in to the console: the session cookie, read on every
//! request ([`Viewer`]), and the CSRF check of every state-changing request
//! ([`ConsoleForm`]).
//!
//! The cookie holds a random secret; storage keeps its SHA-256 only
//! ([`assetpool_core::store::ConsoleSessionStore`]). Every request reads the
//! session with its user, so sign-out, disabling the user and a password
//! change end it at once. The CSRF token of a session is derived from its
//! secret (SHA-256 under a fixed label): bound to the session, unknown to
//! anyone who cannot read the `HttpOnly` cookie, and compared in constant
//! time. The sign-in form, before any session, uses a random token held in
//! a cookie of its own (double submit).
//!
//! Over HTTPS both cookies are named with the `__Host-` prefix (`Secure`,
//! `Path=/`, no `Domain`), over plain HTTP without it (`Path=/console`);
//! each transport reads only its own names ([`cookie_name`]). A session
//! cookie is checked for the shape of a session secret before storage is
//! asked (core's `AuthService::console_session`).

use super::pages::PageError;
use crate::controllers::admin::{creation_page, cut_page};
use crate::extract::scheme::over_https;
use crate::extract::{QueryParams, StrictForm};
use crate::state::AppState;
use assetpool_core::admin::{Actor, Admin};
use assetpool_core::service::ConsoleTimeouts;
use assetpool_core::store::{ConsoleSession, CreationPage};
use assetpool_core::SecretHash;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// The session cookie (its name over plain HTTP; see [`cookie_name`]).
pub const SESSION_COOKIE: &str = "assetpool_console";
/// The sign-in form's CSRF cookie (before any session; see [`cookie_name`]).
pub const SIGN_IN_COOKIE: &str = "assetpool_console_sign_in";
/// The form field of the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The path of the console's cookies over plain HTTP.
const COOKIE_PATH: &str = "/console";
/// The prefix of the console's cookie names over HTTPS: browsers keep such a
/// cookie only when it is `Secure`, has `Path=/` and no `Domain`, so no
/// other host (a sibling subdomain) and no plain-HTTP answer can set or
/// shadow it.
const HOST_PREFIX: &str = "__Host-";
const CSRF_LABEL: &str = "assetpool console csrf\n";

/// Idle and absolute lifetimes of a console session.
pub fn timeouts() -> ConsoleTimeouts {
    ConsoleTimeouts {
        idle: chrono::Duration::minutes(30),
        absolute: chrono::Duration::hours(12),
    }
}

/// The name of the console's cookie `name` ([`SESSION_COOKIE`] or
/// [`SIGN_IN_COOKIE`]) on a request over HTTPS (`secure`: with the
/// `__Host-` prefix) or plain HTTP (as it is). Each transport reads only
/// its own name: over HTTPS a cookie without the prefix may come from
/// another host of the domain.
pub fn cookie_name(name: &str, secure: bool) -> Cow<'_, str> {
    if secure {
        Cow::Owned(format!("{HOST_PREFIX}{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether `name` is one of the console's cookies under any of its names
/// (either prefix, any case): what the reverse proxy keeps from the
/// upstream and the upstream from the console.
pub fn is_console_cookie_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    let bare = name
        .strip_prefix("__host-")
        .or_else(|| name.strip_prefix("__secure-"))
        .unwrap_or(&name);
    bare == SESSION_COOKIE || bare == SIGN_IN_COOKIE
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The value of the console's cookie `name` on a request over HTTPS
/// (`secure`) or plain HTTP, by that transport's name ([`cookie_name`]).
pub fn console_cookie(headers: &HeaderMap, name: &str, secure: bool) -> Option<String> {
    cookie(headers, &cookie_name(name, secure))
}

/// A `Set-Cookie` value of the console's cookie `name`: `HttpOnly`,
/// `SameSite=Strict`; over HTTPS (`secure`) named `__Host-...` with
/// `Secure` and `Path=/` (the prefix requires both; the reverse proxy keeps
/// it from the upstream), over plain HTTP `Path=/console`; `max_age` 0
/// deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> HeaderValue {
    let (path, flag) = if secure {
        ("/", "; Secure")
    } else {
        (COOKIE_PATH, "")
    };
    let name = cookie_name(name, secure);
    let line = format!(
        "{name}={value}; Path={path}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{flag}"
    );
    // Names are constants and values base62: always a valid header value.
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether two tokens are equal, in constant time (for equal lengths).
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Whether the request came over HTTPS (its cookies are then `Secure`).
pub fn request_is_https(parts: &Parts, state: &AppState) -> bool {
    over_https(&parts.headers, &parts.extensions, &state.trusted_proxies)
}

/// What a signed-in user may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An admin: the support console.
    Support,
    /// The owner of at least one application: the owner view.
    Owner,
    /// Neither: no console access.
    None,
}

/// The signed-in user of a request with a live session cookie. Without one,
/// a page is redirected to the sign-in page and anything else refused (403).
#[derive(Debug)]
pub struct Viewer {
    /// The live session, with the user as now stored.
    pub session: ConsoleSession,
    secret: SecretString,
    /// Whether the request came over HTTPS.
    pub secure: bool,
}

impl Viewer {
    /// The session's CSRF token.
    pub fn csrf_token(&self) -> String {
        SecretHash::of(&format!("{CSRF_LABEL}{}", self.secret.expose_secret())).to_hex()
    }

    /// What the user may do.
    pub fn role(&self) -> Role {
        if self.session.user.admin {
            Role::Support
        } else if self.session.owned_applications.is_empty() {
            Role::None
        } else {
            Role::Owner
        }
    }

    /// The core's admin operations, acting (and audited) as this user.
    pub fn admin(&self, state: &AppState) -> Admin {
        state.service.admin(Actor::console_user(&self.session.user))
    }

    /// Refuses (403) anyone but an admin.
    pub fn require_support(&self) -> Result<(), PageError> {
        match self.role() {
            Role::Support => Ok(()),
            Role::Owner => Err(PageError::forbidden()),
            Role::None => Err(PageError::no_access()),
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let refuse = |parts: &Parts| {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                Redirect::to("/console/sign-in").into_response()
            } else {
                PageError::csrf().into_response()
            }
        };
        let secure = request_is_https(parts, state);
        let Some(secret) = console_cookie(&parts.headers, SESSION_COOKIE, secure) else {
            return Err(refuse(parts));
        };
        let session = state
            .service
            .console_session(&secret, timeouts())
            .await
            .map_err(|error| PageError::from(error).into_response())?;
        let Some(session) = session else {
            return Err(refuse(parts));
        };
        Ok(Viewer {
            session,
            secret: SecretString::from(secret),
            secure,
        })
    }
}

/// A state-changing request of a signed-in user: its form fields, once its
/// CSRF token (field `csrf_token`) matched the session's; else 403. Its
/// `Debug` names the fields only: some hold a password.
pub struct ConsoleForm {
    /// Who.
    pub viewer: Viewer,
    /// The form's other fields.
    pub fields: HashMap<String, String>,
}

impl std::fmt::Debug for ConsoleForm {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConsoleForm")
            .field("viewer", &self.viewer)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConsoleForm {
    /// The core's operations acting as the viewer, who must be an admin
    /// (anyone else: 403).
    pub fn support_admin(&self, state: &AppState) -> Result<Admin, PageError> {
        self.viewer.require_support()?;
        Ok(self.viewer.admin(state))
    }

    /// A field, trimmed; `None` when absent or blank.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }
}

impl FromRequest<AppState> for ConsoleForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let StrictForm(mut fields) = StrictForm::from_request(request, state)
            .await
            .map_err(|error| PageError::from(error).into_response())?;
        let presented = fields.remove(CSRF_FIELD).unwrap_or_default();
        if !tokens_match(&presented, &viewer.csrf_token()) {
            return Err(PageError::csrf().into_response());
        }
        Ok(ConsoleForm { viewer, fields })
    }
}

/// Entries on one page of a support list.
pub const PAGE_SIZE: u32 = 50;

/// A page of the support console: a signed-in admin (anyone else: 403, or
/// the sign-in redirect), the operations acting as that admin, and the
/// page's query string.
#[derive(Debug)]
pub struct Support {
    /// Who.
    pub viewer: Viewer,
    /// The core's operations, acting as the viewer.
    pub admin: Admin,
    /// The query string.
    pub query: QueryParams,
}

impl Support {
    /// The page of a creation-ordered list that `cursor` asks for (keyset
    /// pagination), read one entry longer (see [`Support::cut`]).
    pub fn creation_page(&self) -> Result<CreationPage, PageError> {
        Ok(creation_page(self.query.get("cursor"), PAGE_SIZE)?)
    }

    /// Cuts entries read with [`Support::creation_page`] to a page, and
    /// gives the next page's cursor.
    pub fn cut<T>(
        found: Vec<T>,
        created: impl Fn(&T) -> (DateTime<Utc>, String),
    ) -> (Vec<T>, Option<String>) {
        cut_page(found, PAGE_SIZE, |item| {
            let (time, id) = created(item);
            (time.timestamp_millis(), id)
        })
    }

    /// The `before` cursor of a sequence-paged list (alerts, audit log).
    pub fn before(&self) -> Result<Option<i64>, PageError> {
        self.query
            .get("before")
            .map(str::parse::<i64>)
            .transpose()
            .map_err(|_| PageError::bad_request("The page cursor is not one this console gave."))
    }
}

impl FromRequestParts<AppState> for Support {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        viewer
            .require_support()
            .map_err(IntoResponse::into_response)?;
        let query = QueryParams::parse(parts.uri.query())
            .map_err(|error| PageError::from(error).into_response())?;
        let admin = viewer.admin(state);
        Ok(Support {
            viewer,
            admin,
            query,
        })
    }
}
