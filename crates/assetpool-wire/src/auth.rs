//! Bodies of the authentication endpoints and of `GET /v1/resource`.
//!
//! Types that carry a password or a token implement `Debug` by hand and print
//! `[redacted]` in its place.

use crate::Environment;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

const REDACTED: &str = "[redacted]";

/// Body of `POST /api/authentication/login`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    /// The user's email address (matched case-insensitively).
    pub username: String,
    /// The user's password (at most 1024 bytes).
    pub password: String,
    /// Scopes asked for, space-separated (RFC 6749 section 3.3). The token
    /// gets the intersection of the restricted sets among the API key's, the
    /// user's and these; asking for one outside what key and user allow is
    /// 400 `invalid_scope`. Absent or empty: nothing more than key and user restrict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Body of `POST /api/authentication/refresh`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token returned by the last login or refresh.
    pub refresh_token: String,
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RefreshRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

/// Answer of login and refresh.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The access token (a JWT), sent as `x-api-token` or `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Always `Bearer`.
    pub token_type: String,
    /// A single-use token that obtains the next access token.
    pub refresh_token: String,
    /// The token's scopes, space-separated (`""` when restricted to none);
    /// absent when nothing restricted the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .field("refresh_token", &REDACTED)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Answer of `POST /oauth/token` (RFC 6749 section 5.1).
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OAuthTokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// A single-use refresh token.
    pub refresh_token: String,
    /// The token's scopes, space-separated (`""` when restricted to none);
    /// absent when nothing restricted the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for OAuthTokenResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OAuthTokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &REDACTED)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Error body of `POST /oauth/token` (RFC 6749 section 5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OAuthErrorResponse {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`, ...
    pub error: String,
    /// A human-readable explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// Answer of a successful logout (the endpoint answers 204 with no body).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogoutResponse {}

/// The user a token was issued to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserIdentity {
    /// User id.
    pub id: String,
    /// User email.
    pub email: String,
}

/// The API key a request came with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyIdentity {
    /// Key id.
    pub id: String,
    /// Key name.
    pub name: String,
    /// The key's environment.
    pub environment: Environment,
    /// The application the key belongs to.
    pub application: String,
}

/// Answer of `GET /v1/resource`: who is calling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResponse {
    /// The token's user.
    pub user: UserIdentity,
    /// The request's API key.
    pub api_key: ApiKeyIdentity,
    /// When the access token expires.
    pub token_expires_at: DateTime<Utc>,
    /// The request's scopes (the token's, within the API key's current
    /// ones), sorted; `null` when unrestricted.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let login = LoginRequest {
            username: "a@example.com".into(),
            password: "hunter2-hunter2".into(),
            scope: None,
        };
        assert!(!format!("{login:?}").contains("hunter2"));
        let tokens = TokenResponse {
            access_token: "secret-access".into(),
            expires_in: 1,
            token_type: "Bearer".into(),
            refresh_token: "secret-refresh".into(),
            scope: Some("a b".into()),
        };
        let debug = format!("{tokens:?}");
        assert!(!debug.contains("secret-access"));
        assert!(!debug.contains("secret-refresh"));
    }

    #[test]
    fn token_response_is_camel_case() {
        let tokens = TokenResponse {
            access_token: "a".into(),
            expires_in: 86400,
            token_type: "Bearer".into(),
            refresh_token: "r".into(),
            scope: None,
        };
        let json = serde_json::to_value(&tokens).unwrap();
        assert!(
            json.get("scope").is_none(),
            "no scope field when unrestricted"
        );
        assert_eq!(json["accessToken"], "a");
        assert_eq!(json["expiresIn"], 86400);
        assert_eq!(json["tokenType"], "Bearer");
        assert_eq!(json["refreshToken"], "r");
    }
}
