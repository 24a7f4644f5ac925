//! The client's error type.

use assetpool_wire::ErrorCode;
use std::fmt;
use std::time::Duration;

/// A refusal by the server: its HTTP status and the contract's error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The contract's error code, when the body carried a known one.
    pub code: Option<ErrorCode>,
    /// The `error` string of the body as sent (also for codes this crate does not know).
    pub error: String,
    /// The server's human-readable message (never contains a secret).
    pub message: String,
    /// The `Retry-After` the server asked for, if any.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.error.is_empty() {
            write!(formatter, "HTTP status {}", self.status)
        } else {
            write!(
                formatter,
                "HTTP status {}: {}: {}",
                self.status, self.error, self.message
            )
        }
    }
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client is misconfigured (a missing setting, a bad URL).
    #[error("client configuration: {0}")]
    Config(String),
    /// The server could not be reached, or did not answer in time.
    #[error("cannot reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server refused the request.
    #[error("{0}")]
    Api(ApiError),
    /// The server answered with a redirect (a 3xx status other than 304 Not
    /// Modified). The client never follows one, so that the API key, tokens
    /// and password go to the configured server only; follow `location`
    /// yourself, without the client's credentials, if you trust it. The
    /// message does not show `location`.
    #[error("the server answered HTTP status {status}, a redirect, which is not followed: credentials go to the configured server only")]
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The `Location` header, when there was a readable one.
        location: Option<String>,
    },
    /// The server's answer was not what the contract says.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl Error {
    /// The contract's error code, when the server refused with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(api) => api.code,
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(api) => Some(api.status),
            Error::Redirect { status, .. } => Some(*status),
            Error::Transport(error) => error.status().map(|status| status.as_u16()),
            _ => None,
        }
    }

    pub(crate) fn transport(error: reqwest::Error) -> Self {
        // URLs never carry credentials here, but strip them anyway: a caller may
        // have put a query string on its own request.
        Error::Transport(error.without_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_status_of_an_api_error() {
        let error = Error::Api(ApiError {
            status: 401,
            code: Some(ErrorCode::TokenExpired),
            error: "token_expired".into(),
            message: "the access token has expired".into(),
            retry_after: None,
        });
        assert_eq!(error.code(), Some(ErrorCode::TokenExpired));
        assert_eq!(error.status(), Some(401));
        assert_eq!(
            error.to_string(),
            "HTTP status 401: token_expired: the access token has expired"
        );
    }
}
