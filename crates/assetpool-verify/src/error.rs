//! Why a request was refused, and the refusal as an HTTP response.

use assetpool_wire::{ErrorCode, ErrorResponse};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

/// Why a token was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No token in `x-api-token` or `Authorization: Bearer`.
    #[error("missing token")]
    Missing,
    /// `x-api-token` and `Authorization` carry different tokens, or one is repeated.
    #[error("conflicting token headers")]
    Conflicting,
    /// Malformed, bad signature, wrong algorithm, type, `kid`, issuer, audience or environment.
    #[error("invalid token")]
    Invalid,
    /// Past its `exp` (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// The server says the token's session is revoked (introspection).
    #[error("token revoked")]
    Revoked,
    /// The server's keys or its introspection endpoint could not be reached.
    #[error("the authentication server is unavailable: {0}")]
    Unavailable(String),
}

impl VerifyError {
    /// The contract's error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            VerifyError::Missing => ErrorCode::MissingToken,
            VerifyError::Conflicting => ErrorCode::InvalidRequest,
            VerifyError::Invalid => ErrorCode::InvalidToken,
            VerifyError::Expired => ErrorCode::TokenExpired,
            VerifyError::Revoked => ErrorCode::TokenRevoked,
            VerifyError::Unavailable(_) => ErrorCode::UpstreamUnavailable,
        }
    }

    /// The refusal as the server itself answers it: the contract's status and
    /// `{"error","message"}` body, `WWW-Authenticate` (RFC 6750) and `Cache-Control: no-store`.
    pub fn to_response<B: From<String>>(&self) -> Response<B> {
        let code = self.code();
        let body = serde_json::to_string(&ErrorResponse::new(code)).unwrap_or_default();
        let mut response = Response::new(B::from(body));
        *response.status_mut() =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = match self {
            VerifyError::Missing => Some(r#"Bearer realm="assetpool""#),
            VerifyError::Invalid | VerifyError::Expired | VerifyError::Revoked => {
                Some(r#"Bearer realm="assetpool", error="invalid_token""#)
            }
            VerifyError::Conflicting | VerifyError::Unavailable(_) => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_look_like_the_servers() {
        let response: Response<String> = VerifyError::Expired.to_response();
        assert_eq!(response.status(), 401);
        assert!(response.body().contains(r#""error":"token_expired""#));
        assert!(response.headers().contains_key(WWW_AUTHENTICATE));
        let response: Response<String> = VerifyError::Conflicting.to_response();
        assert_eq!(response.status(), 400);
    }
}
