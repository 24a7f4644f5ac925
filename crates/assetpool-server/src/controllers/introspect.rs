//! `POST /oauth/introspect`: RFC 7662 token introspection for resource servers.
//!
//! The caller authenticates with its API key (`invalid_client`, 401, without a
//! good one, as on `/oauth/token`). The token is judged by exactly the rules of
//! a protected request ([`AuthService::authenticate_token`] against the
//! caller's key), so a token of another application, or one that is malformed,
//! expired or revoked, is `{"active": false}` (RFC 7662 section 2.2 reveals
//! nothing more about an inactive token). An active token's `scope` is what
//! a request with it and the caller's key may do: its scopes within the key's
//! current ones (absent when unrestricted).
//!
//! [`AuthService::authenticate_token`]: assetpool_core::AuthService::authenticate_token

use super::no_store;
use crate::error::OAuthError;
use crate::extract::{client_address, PresentedCredentials, StrictForm};
use crate::state::AppState;
use assetpool_wire::{IntrospectionResponse, OAuthErrorResponse};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use axum::Json;

/// Answers whether a token is live, and its claims when it is.
#[utoipa::path(
    post, path = "/oauth/introspect", tag = "oauth",
    security(("apiKey" = [])),
    request_body(content = crate::openapi::IntrospectionForm, content_type = "application/x-www-form-urlencoded",
        description = "token=..[&token_type_hint=access_token] (RFC 7662 section 2.1)"),
    responses(
        (status = 200, description = "The token's state", body = IntrospectionResponse),
        (status = 400, description = "invalid_request: no token parameter", body = OAuthErrorResponse),
        (status = 401, description = "invalid_client: missing or bad API key (revoked, expired, disabled, another environment's)", body = OAuthErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the caller's API key's allow-list", body = OAuthErrorResponse),
        (status = 429, description = "The API key is over its rate limit or quota (rate_limited)", body = OAuthErrorResponse),
        (status = 415, description = "Not a form body", body = OAuthErrorResponse),
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    mut request: Request,
) -> Result<Response, OAuthError> {
    // The caller is the API key's application; HTTP Basic is ignored as on /oauth/token.
    request.headers_mut().remove(AUTHORIZATION);
    let credentials = PresentedCredentials::from_headers(request.headers())?;
    let client = client_address(
        request.headers(),
        request.extensions(),
        &state.trusted_proxies,
    );
    let key = state
        .service
        .authenticate_key(credentials.api_key.as_deref(), Some(client))
        .await?;
    let StrictForm(form) = StrictForm::from_request(request, &state).await?;
    let token = form
        .get("token")
        .map(String::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("the token parameter is required"))?;
    let answer = match state.service.authenticate_token(&key.record, Some(token)) {
        Ok(claims) => IntrospectionResponse {
            active: true,
            sub: Some(claims.sub.clone()),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss.clone()),
            aud: Some(claims.aud.clone()),
            sid: Some(claims.sid.clone()),
            app: Some(claims.app.clone()),
            env: Some(claims.env),
            client_id: Some(claims.client_id.clone()),
            token_type: Some("Bearer".to_owned()),
            jti: Some(claims.jti.clone()),
            scope: assetpool_core::service::EffectiveScopes::of(
                claims.scope.as_ref(),
                key.record.scopes.as_ref(),
            )
            .to_text(),
        },
        Err(_) => IntrospectionResponse::inactive(),
    };
    Ok(no_store(Json(answer)))
}
