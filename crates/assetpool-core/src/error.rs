//! The error of every service operation, carrying the contract's error code.

use crate::limits::LimitExceeded;
use crate::store::StoreError;
use assetpool_wire::ErrorCode;
use std::borrow::Cow;

/// Why a service operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller's request is refused with `code`; `message` never echoes input.
    #[error("{code}: {message}")]
    Refused {
        /// The contract's error code.
        code: ErrorCode,
        /// A human explanation.
        message: Cow<'static, str>,
    },
    /// Too many failed logins: retry after the given seconds.
    #[error("too many attempts; retry after {retry_after_seconds} s")]
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after_seconds: u64,
    },
    /// The API key is over its rate limit or quota.
    #[error("rate limited; retry after {} s", .0.retry_after_seconds)]
    RateLimited(LimitExceeded),
    /// Password hashing is saturated.
    #[error("overloaded; retry after {retry_after_seconds} s")]
    Overloaded {
        /// Seconds after which to retry.
        retry_after_seconds: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An unexpected internal failure (logged, never shown to clients).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A refusal with the code's default message.
    pub fn refused(code: ErrorCode) -> Self {
        ServiceError::Refused {
            code,
            message: Cow::Borrowed(code.default_message()),
        }
    }

    /// A refusal with a specific message (which must not echo input).
    pub fn refused_with(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ServiceError::Refused {
            code,
            message: message.into(),
        }
    }

    /// `invalid_request` with a message.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        ServiceError::refused_with(ErrorCode::InvalidRequest, message)
    }

    /// The contract's error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Refused { code, .. } => *code,
            ServiceError::Throttled { .. } => ErrorCode::TooManyAttempts,
            ServiceError::RateLimited(_) => ErrorCode::RateLimited,
            ServiceError::Overloaded { .. } => ErrorCode::Overloaded,
            ServiceError::Store(StoreError::Unavailable(_)) => ErrorCode::StorageUnavailable,
            ServiceError::Store(StoreError::NotFound) => ErrorCode::NotFound,
            ServiceError::Store(_) | ServiceError::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<ErrorCode> for ServiceError {
    fn from(code: ErrorCode) -> Self {
        ServiceError::refused(code)
    }
}
