//! The one place where errors become HTTP responses.
//!
//! Every refusal is `{"error": CODE, "message": TEXT}` with the contract's status.
//! Token refusals carry `WWW-Authenticate` (RFC 6750 section 3.1; a request
//! without the scopes it needs names them there), throttling and
//! overload carry `Retry-After`; a key over its rate limit or quota also gets
//! the `RateLimit-*` headers. 5xx bodies are opaque; the cause is logged once here.

use assetpool_core::limits::LimitExceeded;
use assetpool_core::{ScopeSet, ServiceError, StoreError};
use assetpool_wire::{ErrorCode, ErrorResponse, OAuthErrorResponse};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::borrow::Cow;

/// Seconds clients are asked to wait when storage is unavailable.
const STORAGE_RETRY_AFTER_SECONDS: u64 = 5;

/// An error answered by an assetpool endpoint.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    retry_after_seconds: Option<u64>,
    rate_limit: Option<LimitExceeded>,
    /// The scopes a refused request needed (`insufficient_scope`).
    required_scope: Option<Box<str>>,
}

impl ApiError {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        ApiError::with_message(code, code.default_message())
    }

    /// An error with a specific message (never echoing input).
    pub fn with_message(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_seconds: None,
            rate_limit: None,
            required_scope: None,
        }
    }

    /// 403 `insufficient_scope`: the request does not have every scope of
    /// `required`, which its `WWW-Authenticate` names (RFC 6750 section 3.1).
    pub fn insufficient_scope(required: &ScopeSet) -> Self {
        ApiError {
            required_scope: Some(required.to_string().into_boxed_str()),
            ..ApiError::new(ErrorCode::InsufficientScope)
        }
    }

    /// `invalid_request` with a message.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::with_message(ErrorCode::InvalidRequest, message)
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human explanation (never an echo of input; opaque for 5xx).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds a client is asked to wait (`Retry-After`), if any.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after_seconds
    }

    /// The HTTP status of the error code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let code = error.code();
        match error {
            ServiceError::Refused { code, message } => ApiError::with_message(code, message),
            ServiceError::RateLimited(exceeded) => ApiError {
                retry_after_seconds: Some(exceeded.retry_after_seconds),
                rate_limit: Some(exceeded),
                ..ApiError::new(code)
            },
            ServiceError::Throttled {
                retry_after_seconds,
            }
            | ServiceError::Overloaded {
                retry_after_seconds,
            } => ApiError {
                retry_after_seconds: Some(retry_after_seconds),
                ..ApiError::new(code)
            },
            ServiceError::Store(StoreError::Unavailable(cause)) => {
                tracing::error!(%cause, "storage unavailable");
                ApiError {
                    retry_after_seconds: Some(STORAGE_RETRY_AFTER_SECONDS),
                    ..ApiError::new(code)
                }
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(code)
            }
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

fn www_authenticate(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::MissingToken => Some(r#"Bearer realm="assetpool""#),
        ErrorCode::InvalidToken | ErrorCode::TokenExpired | ErrorCode::TokenRevoked => {
            Some(r#"Bearer realm="assetpool", error="invalid_token""#)
        }
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorResponse {
            error: self.code,
            message: self.message.into_owned(),
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(self.code);
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = www_authenticate(self.code) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(required) = &self.required_scope {
            // Scopes are of `a-z 0-9 _ . : -` and spaces: a valid header value.
            let challenge = format!(
                r#"Bearer realm="assetpool", error="insufficient_scope", scope="{required}""#
            );
            if let Ok(challenge) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
        }
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(exceeded) = &self.rate_limit {
            insert_rate_limit_headers(headers, exceeded);
        }
        response
    }
}

/// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers
/// of a request over a key's rate limit or quota.
fn insert_rate_limit_headers(headers: &mut axum::http::HeaderMap, exceeded: &LimitExceeded) {
    headers.insert(
        HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(exceeded.limit),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from(exceeded.remaining),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-reset"),
        HeaderValue::from(exceeded.reset_seconds),
    );
}

/// An error of the RFC 6749 token endpoint (section 5.2 format).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    retry_after_seconds: Option<u64>,
    rate_limit: Option<LimitExceeded>,
}

impl OAuthError {
    /// `invalid_request` (400).
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
            retry_after_seconds: None,
            rate_limit: None,
        }
    }

    /// `unsupported_grant_type` (400).
    pub fn unsupported_grant_type() -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: Cow::Borrowed("supported grant types are password and refresh_token"),
            retry_after_seconds: None,
            rate_limit: None,
        }
    }
}

impl From<ApiError> for OAuthError {
    fn from(error: ApiError) -> Self {
        let (status, code): (StatusCode, &'static str) = match error.code {
            ErrorCode::MissingApiKey
            | ErrorCode::InvalidApiKey
            | ErrorCode::ApiKeyRevoked
            | ErrorCode::ApiKeyExpired
            | ErrorCode::ApiKeyDisabled
            | ErrorCode::WrongEnvironment => (StatusCode::UNAUTHORIZED, "invalid_client"),
            // Not an RFC 6749 code: the contract names it (section 8).
            ErrorCode::AddressNotAllowed => (StatusCode::FORBIDDEN, "address_not_allowed"),
            ErrorCode::InvalidCredentials | ErrorCode::InvalidRefreshToken => {
                (StatusCode::BAD_REQUEST, "invalid_grant")
            }
            ErrorCode::PayloadTooLarge | ErrorCode::UnsupportedMediaType => {
                (error.status(), "invalid_request")
            }
            ErrorCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            ErrorCode::InvalidScope => (StatusCode::BAD_REQUEST, "invalid_scope"),
            ErrorCode::TooManyAttempts => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ErrorCode::Overloaded | ErrorCode::StorageUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        OAuthError {
            status,
            error: code,
            description: error.message,
            retry_after_seconds: error.retry_after_seconds,
            rate_limit: error.rate_limit,
        }
    }
}

impl From<ServiceError> for OAuthError {
    fn from(error: ServiceError) -> Self {
        OAuthError::from(ApiError::from(error))
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorResponse {
            error: self.error.to_owned(),
            error_description: Some(self.description.into_owned()),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(exceeded) = &self.rate_limit {
            insert_rate_limit_headers(headers, exceeded);
        }
        response
    }
}
