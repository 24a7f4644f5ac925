//! Why a request was refused, and the refusal as an HTTP response.

use assetpool_wire::{ErrorCode, ErrorResponse, ScopeSet};
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
    /// The token lacks a scope the request needs (403 `insufficient_scope`,
    /// RFC 6750 section 3.1). `required` names the whole requirement; it is
    /// empty when the requirement itself is not a valid set of scopes (then
    /// nothing meets it).
    #[error("insufficient scope")]
    InsufficientScope {
        /// The scopes the request needs.
        required: ScopeSet,
    },
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
            VerifyError::InsufficientScope { .. } => ErrorCode::InsufficientScope,
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
            VerifyError::InsufficientScope { required } => {
                // Scopes are of `a-z 0-9 _ . : -`: a valid quoted string.
                let challenge = if required.is_empty() {
                    r#"Bearer realm="assetpool", error="insufficient_scope""#.to_owned()
                } else {
                    format!(
                        r#"Bearer realm="assetpool", error="insufficient_scope", scope="{required}""#
                    )
                };
                if let Ok(challenge) = HeaderValue::from_str(&challenge) {
                    headers.insert(WWW_AUTHENTICATE, challenge);
                }
                None
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
        let required = ScopeSet::parse("orders:read orders:write").unwrap();
        let response: Response<String> = VerifyError::InsufficientScope { required }.to_response();
        assert_eq!(response.status(), 403);
        assert!(response.body().contains(r#""error":"insufficient_scope""#));
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="assetpool", error="insufficient_scope", scope="orders:read orders:write""#
        );
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }
}
