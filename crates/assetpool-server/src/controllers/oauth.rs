//! `POST /oauth/token`: the RFC 6749 token endpoint (password and refresh_token grants).
//!
//! No client authentication: a `client_id` field or HTTP Basic credentials a
//! stock OAuth client sends anyway are ignored. The application is identified
//! by its API key; a missing or bad key is `invalid_client` (401).

use super::no_store;
use crate::error::OAuthError;
use crate::extract::{ClientAddress, PresentedCredentials, StrictForm};
use crate::state::AppState;
use assetpool_core::service::IssuedTokens;
use assetpool_wire::{OAuthErrorResponse, OAuthTokenResponse};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};

fn token_response(tokens: &IssuedTokens) -> OAuthTokenResponse {
    OAuthTokenResponse {
        access_token: tokens.access_token.expose_secret().to_owned(),
        token_type: "Bearer".to_owned(),
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token.expose_secret().to_owned(),
        scope: tokens.scope.as_ref().map(ToString::to_string),
    }
}

fn required<'a>(
    form: &'a std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is required")))
}

/// Issues tokens by the password or refresh_token grant.
#[utoipa::path(
    post, path = "/oauth/token", tag = "oauth",
    security(("apiKey" = [])),
    request_body(content = crate::openapi::OAuthTokenForm, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=password&username=..&password=..[&scope=..] or grant_type=refresh_token&refresh_token=..[&scope=..] (a refresh keeps the session's scopes; its scope parameter may only narrow them)"),
    responses(
        (status = 200, description = "Tokens; `scope` names the token's scopes unless nothing restricted the login", body = OAuthTokenResponse),
        (status = 400, description = "invalid_request, invalid_grant, unsupported_grant_type, invalid_scope (a requested scope malformed or outside what the API key and the user allow)", body = OAuthErrorResponse),
        (status = 401, description = "invalid_client: missing or bad API key (revoked, expired, disabled, another environment's)", body = OAuthErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list (answered before any password is checked)", body = OAuthErrorResponse),
        (status = 429, description = "Too many failed attempts (too_many_attempts), or the API key is over its rate limit or quota (rate_limited)", body = OAuthErrorResponse),
        (status = 503, description = "Password hashing saturated", body = OAuthErrorResponse),
    )
)]
pub async fn issue_token(
    State(state): State<AppState>,
    ClientAddress(client_address): ClientAddress,
    mut request: Request,
) -> Result<Response, OAuthError> {
    // HTTP Basic client credentials are ignored; only a Bearer token would
    // be a credential here, and none is needed.
    request.headers_mut().remove(AUTHORIZATION);
    let credentials = PresentedCredentials::from_headers(request.headers())?;
    let StrictForm(form) = StrictForm::from_request(request, &state).await?;
    let api_key = credentials.api_key.as_deref();
    let tokens = match required(&form, "grant_type")? {
        "password" => {
            let username = required(&form, "username")?;
            let password = form.get("password").cloned().unwrap_or_default();
            if password.is_empty() {
                return Err(OAuthError::invalid_request(
                    "the password parameter is required",
                ));
            }
            let scope = form.get("scope").map(String::as_str);
            state
                .service
                .login(
                    api_key,
                    username,
                    SecretString::from(password),
                    scope,
                    client_address,
                )
                .await?
        }
        "refresh_token" => {
            let refresh_token = required(&form, "refresh_token")?;
            let scope = form.get("scope").map(String::as_str);
            state
                .service
                .refresh(api_key, refresh_token, scope, client_address)
                .await?
        }
        _ => return Err(OAuthError::unsupported_grant_type()),
    };
    Ok(no_store(Json(token_response(&tokens))))
}
