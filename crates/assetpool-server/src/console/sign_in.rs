//! Signing in and out. Sign-in takes an email and a password (no API key)
//! and is throttled by the API login's own code path
//! ([`assetpool_core::AuthService::console_sign_in`]); its form carries the
//! token of the sign-in cookie (double submit), since no session exists yet.
//! Both a sign-in and a sign-out are audited as the user.

use super::pages::{html, Frame, PageError};
use super::session::{
    console_cookie, request_is_https, set_cookie, timeouts, tokens_match, ConsoleForm, CSRF_FIELD,
    SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::error::ApiError;
use crate::extract::{ClientAddress, StrictForm};
use crate::state::AppState;
use askama::Template;
use assetpool_core::api_key::random_token;
use assetpool_wire::ErrorCode;
use axum::extract::FromRequest;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};

/// Characters of the sign-in form's token.
const SIGN_IN_TOKEN_CHARS: usize = 32;

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    frame: Frame,
    csrf: String,
    problem: Option<&'static str>,
}

/// The sign-in form, answered with `status`: it keeps the request's sign-in
/// token, or sets a new one.
pub fn sign_in_page(
    parts: &Parts,
    state: &AppState,
    status: StatusCode,
    problem: Option<&'static str>,
) -> Response {
    let secure = request_is_https(parts, state);
    let token = console_cookie(&parts.headers, SIGN_IN_COOKIE, secure)
        .filter(|token| {
            token.len() == SIGN_IN_TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .unwrap_or_else(|| {
            random_token("", SIGN_IN_TOKEN_CHARS)
                .expose_secret()
                .to_owned()
        });
    let page = SignInPage {
        frame: Frame::anonymous("Sign in"),
        csrf: token.clone(),
        problem,
    };
    let mut response = html(status, &page);
    let max_age = timeouts().idle.num_seconds();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &token, max_age, secure),
    );
    response
}

/// `GET /console/sign-in`.
pub async fn show_sign_in(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    sign_in_page(&parts, &state, StatusCode::OK, None)
}

/// `POST /console/sign-in`: on success, the session cookie and a redirect
/// to the console; else the form again with the contract's status (401 for
/// wrong credentials, 429 with `Retry-After` when throttled).
pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(client_address): ClientAddress,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let form =
        match StrictForm::from_request(Request::from_parts(parts.clone(), body), &state).await {
            Ok(StrictForm(fields)) => fields,
            Err(error) => return PageError::from(error).into_response(),
        };
    let secure = request_is_https(&parts, &state);
    let expected = console_cookie(&parts.headers, SIGN_IN_COOKIE, secure).unwrap_or_default();
    let presented = form.get(CSRF_FIELD).map_or("", String::as_str);
    if !tokens_match(presented, &expected) {
        return PageError::csrf().into_response();
    }
    let username = form.get("username").map_or("", String::as_str);
    let password = SecretString::from(form.get("password").cloned().unwrap_or_default());
    let outcome = state
        .service
        .console_sign_in(username.trim(), password, client_address, timeouts())
        .await;
    let signed_in = match outcome {
        Ok(signed_in) => signed_in,
        Err(error) => return refused_sign_in(&parts, &state, ApiError::from(error)),
    };
    let mut response = Redirect::to("/console/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            signed_in.secret.expose_secret(),
            timeouts().absolute.num_seconds(),
            secure,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", 0, secure),
    );
    response
}

/// The answer to a refused sign-in: the form again for wrong credentials
/// and throttling, an error page for anything else.
fn refused_sign_in(parts: &Parts, state: &AppState, error: ApiError) -> Response {
    let problem = match error.code() {
        ErrorCode::InvalidCredentials => "The email or the password is wrong.",
        ErrorCode::TooManyAttempts => "Too many failed attempts. Wait a while, then try again.",
        _ => return PageError::from(error).into_response(),
    };
    let mut response = sign_in_page(parts, state, error.status(), Some(problem));
    if let Some(seconds) = error.retry_after_seconds() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// `POST /console/sign-out`: ends the session (audited as the user) and
/// clears the cookie.
pub async fn sign_out(State(state): State<AppState>, form: ConsoleForm) -> Response {
    let viewer = &form.viewer;
    if let Err(error) = viewer
        .admin(&state)
        .end_console_session(&viewer.session)
        .await
    {
        return PageError::from(error).into_response();
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, viewer.secure),
    );
    response
}
