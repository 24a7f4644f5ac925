//! `POST /api/authentication/{login,refresh,logout}`.

use super::no_store;
use crate::error::ApiError;
use crate::extract::{Authenticated, ClientAddress, PresentedCredentials, StrictJson};
use crate::state::AppState;
use assetpool_core::service::IssuedTokens;
use assetpool_wire::{ErrorResponse, LoginRequest, RefreshRequest, TokenResponse};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use std::time::Instant;

/// The JSON answer of login and refresh.
pub(crate) fn token_response(tokens: &IssuedTokens) -> TokenResponse {
    TokenResponse {
        access_token: tokens.access_token.expose_secret().to_owned(),
        expires_in: tokens.expires_in,
        token_type: "Bearer".to_owned(),
        refresh_token: tokens.refresh_token.expose_secret().to_owned(),
        scope: tokens.scope.as_ref().map(ToString::to_string),
    }
}

/// Logs in with username and password (OAuth 2.0 password grant).
#[utoipa::path(
    post, path = "/api/authentication/login", tag = "authentication",
    security(("apiKey" = [])),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; `scope` names the token's scopes unless nothing restricted the login", body = TokenResponse),
        (status = 400, description = "Malformed request (invalid_request), or a requested scope that is malformed or outside what the API key and the user allow (invalid_scope)", body = ErrorResponse),
        (status = 401, description = "Bad API key (missing_api_key, invalid_api_key, api_key_revoked, api_key_expired, api_key_disabled, wrong_environment) or credentials", body = ErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list (answered before any password is checked)", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
        (status = 429, description = "Too many failed attempts (too_many_attempts), or the API key is over its rate limit or quota (rate_limited)", body = ErrorResponse),
        (status = 503, description = "Password hashing saturated", body = ErrorResponse),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    credentials: PresentedCredentials,
    ClientAddress(client_address): ClientAddress,
    StrictJson(request): StrictJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let outcome = state
        .service
        .login(
            credentials.api_key.as_deref(),
            &request.username,
            SecretString::from(request.password),
            request.scope.as_deref(),
            client_address,
        )
        .await;
    state
        .metrics
        .login_seconds
        .observe(started.elapsed().as_secs_f64());
    let tokens = outcome?;
    Ok(no_store(Json(token_response(&tokens))))
}

/// Spends a refresh token for a new access token and refresh token.
#[utoipa::path(
    post, path = "/api/authentication/refresh", tag = "authentication",
    security(("apiKey" = [])),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Renewed, with the session's scopes (within the API key's current ones)", body = TokenResponse),
        (status = 400, description = "Malformed request", body = ErrorResponse),
        (status = 401, description = "Bad API key (api_key_disabled included) or refresh token (also while the key its session was opened through is disabled)", body = ErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list", body = ErrorResponse),
        (status = 429, description = "The API key is over its rate limit or quota (rate_limited)", body = ErrorResponse),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    credentials: PresentedCredentials,
    ClientAddress(client_address): ClientAddress,
    StrictJson(request): StrictJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let tokens = state
        .service
        .refresh(
            credentials.api_key.as_deref(),
            &request.refresh_token,
            None,
            client_address,
        )
        .await?;
    Ok(no_store(Json(token_response(&tokens))))
}

/// Ends the session of the presented token.
#[utoipa::path(
    post, path = "/api/authentication/logout", tag = "authentication",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Bad API key (api_key_disabled included) or token", body = ErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list", body = ErrorResponse),
        (status = 429, description = "The API key is over its rate limit or quota (rate_limited)", body = ErrorResponse),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(verified): Authenticated,
) -> Result<Response, ApiError> {
    state.service.logout(&verified.claims).await?;
    Ok(no_store(StatusCode::NO_CONTENT))
}
