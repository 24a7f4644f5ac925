//! The claims of a verified access token.

use assetpool_wire::Environment;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The claims of an access token that passed verification (RFC 9068 profile).
///
/// The verify layer puts them into the request's extensions; handlers read them
/// from there (or, with the `axum` feature, take them as an extractor).
/// `Debug` omits the email address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer URL.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds since the epoch).
    pub nbf: i64,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// Session id.
    pub sid: String,
    /// Application of the API key the user logged in with.
    pub app: String,
    /// Environment of the issuing server.
    pub env: Environment,
    /// RFC 9068 `client_id`: the application.
    pub client_id: String,
    /// The user's email address.
    pub email: String,
}

impl fmt::Debug for AccessClaims {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AccessClaims")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("app", &self.app)
            .field("env", &self.env)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}
