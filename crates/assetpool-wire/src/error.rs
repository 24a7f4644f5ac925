//! Stable error codes and the error body `{"error": CODE, "message": TEXT}`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error code the HTTP API can answer with. The string forms are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No `x-api-key` header.
    MissingApiKey,
    /// The API key has a bad shape or checksum, or is unknown.
    InvalidApiKey,
    /// The API key was revoked.
    ApiKeyRevoked,
    /// The API key expired, or its rotation grace period is over.
    ApiKeyExpired,
    /// The API key belongs to another environment than the server's.
    WrongEnvironment,
    /// No access token.
    MissingToken,
    /// The token is malformed, badly signed, or not meant for this server or application.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The token's session was revoked.
    TokenRevoked,
    /// The request is malformed.
    InvalidRequest,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// The request body has the wrong content type.
    UnsupportedMediaType,
    /// Username or password is wrong, or the account is disabled.
    InvalidCredentials,
    /// Too many failed logins; retry later.
    TooManyAttempts,
    /// Password hashing is saturated; retry later.
    Overloaded,
    /// The refresh token is unknown, expired, spent or belongs to another application.
    InvalidRefreshToken,
    /// The caller is authenticated but not allowed to do this.
    Forbidden,
    /// No such route or resource.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request took too long.
    RequestTimeout,
    /// Storage cannot be reached.
    StorageUnavailable,
    /// Too many requests for this key.
    RateLimited,
    /// The upstream of the gateway cannot be reached.
    UpstreamUnavailable,
    /// The upstream of the gateway did not answer in time.
    UpstreamTimeout,
    /// An unexpected failure on the server; details are in the server log only.
    InternalError,
    /// The API key is disabled (until support staff enable it again).
    ApiKeyDisabled,
    /// The API key may not be used from the client's address (its allow-list).
    AddressNotAllowed,
    /// A login asked for a scope that is malformed or outside what its API
    /// key and user allow (RFC 6749 section 5.2).
    InvalidScope,
    /// The token does not carry every scope the request needs (RFC 6750 section 3.1).
    InsufficientScope,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MissingApiKey
            | ErrorCode::InvalidApiKey
            | ErrorCode::ApiKeyRevoked
            | ErrorCode::ApiKeyExpired
            | ErrorCode::ApiKeyDisabled
            | ErrorCode::WrongEnvironment
            | ErrorCode::MissingToken
            | ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::InvalidCredentials
            | ErrorCode::InvalidRefreshToken => 401,
            ErrorCode::InvalidRequest | ErrorCode::InvalidScope => 400,
            ErrorCode::Forbidden | ErrorCode::AddressNotAllowed | ErrorCode::InsufficientScope => {
                403
            }
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyAttempts | ErrorCode::RateLimited => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::UpstreamUnavailable => 502,
            ErrorCode::Overloaded | ErrorCode::StorageUnavailable => 503,
            ErrorCode::UpstreamTimeout => 504,
        }
    }

    /// The stable string form, e.g. `invalid_api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingApiKey => "missing_api_key",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::ApiKeyRevoked => "api_key_revoked",
            ErrorCode::ApiKeyExpired => "api_key_expired",
            ErrorCode::WrongEnvironment => "wrong_environment",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenRevoked => "token_revoked",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::InvalidRefreshToken => "invalid_refresh_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ApiKeyDisabled => "api_key_disabled",
            ErrorCode::AddressNotAllowed => "address_not_allowed",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InsufficientScope => "insufficient_scope",
        }
    }

    /// A human sentence describing the code. Never contains submitted values.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::MissingApiKey => "the x-api-key header is required",
            ErrorCode::InvalidApiKey => "the API key is not valid",
            ErrorCode::ApiKeyRevoked => "the API key has been revoked",
            ErrorCode::ApiKeyExpired => "the API key has expired",
            ErrorCode::WrongEnvironment => {
                "the API key belongs to another environment than this server"
            }
            ErrorCode::MissingToken => {
                "an access token is required in x-api-token or Authorization: Bearer"
            }
            ErrorCode::InvalidToken => "the access token is not valid",
            ErrorCode::TokenExpired => "the access token has expired",
            ErrorCode::TokenRevoked => "the access token has been revoked",
            ErrorCode::InvalidRequest => "the request is malformed",
            ErrorCode::PayloadTooLarge => "the request body is too large",
            ErrorCode::UnsupportedMediaType => "the request body has an unsupported content type",
            ErrorCode::InvalidCredentials => "invalid username or password",
            ErrorCode::TooManyAttempts => "too many failed attempts; retry later",
            ErrorCode::Overloaded => "the server is busy; retry later",
            ErrorCode::InvalidRefreshToken => "the refresh token is not valid",
            ErrorCode::Forbidden => "not allowed",
            ErrorCode::NotFound => "not found",
            ErrorCode::MethodNotAllowed => "method not allowed",
            ErrorCode::RequestTimeout => "the request took too long",
            ErrorCode::StorageUnavailable => "storage is unavailable; retry later",
            ErrorCode::RateLimited => "rate limit exceeded; retry later",
            ErrorCode::UpstreamUnavailable => "the upstream service is unavailable",
            ErrorCode::UpstreamTimeout => "the upstream service did not answer in time",
            ErrorCode::InternalError => "internal error",
            ErrorCode::ApiKeyDisabled => "the API key is disabled",
            ErrorCode::AddressNotAllowed => "the API key may not be used from this client address",
            ErrorCode::InvalidScope => {
                "the requested scope is malformed or not allowed for this API key and user"
            }
            ErrorCode::InsufficientScope => {
                "the token does not carry the scopes this request needs"
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The error body of every non-OAuth endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// The stable error code.
    pub error: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

impl ErrorResponse {
    /// The body for `code` with its default message.
    pub fn new(code: ErrorCode) -> Self {
        ErrorResponse {
            error: code,
            message: code.default_message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_matches_serde() {
        for code in [
            ErrorCode::MissingApiKey,
            ErrorCode::WrongEnvironment,
            ErrorCode::TooManyAttempts,
            ErrorCode::InvalidRefreshToken,
            ErrorCode::InternalError,
            ErrorCode::ApiKeyDisabled,
            ErrorCode::AddressNotAllowed,
            ErrorCode::InvalidScope,
            ErrorCode::InsufficientScope,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
