//! The claims of an access token: the token's payload (RFC 9068 profile), as
//! the server signs it and as every verifier reads it.

use crate::{Environment, ScopeSet};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The claims of an access token. `Debug` omits the issuer, audience, token
/// id and email address.
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
    /// RFC 9068 `client_id`: the application (there are no OAuth clients).
    pub client_id: String,
    /// The user's email address.
    pub email: String,
    /// The API key the session was opened through (its id, as in
    /// `x-assetpool-key-id`): while that key is disabled, the token is
    /// refused. Absent from tokens issued before servers wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// RFC 9068 `scope`: the scopes granted at login, space-separated (`""`
    /// when restricted to none). Absent when nothing restricted the login:
    /// such a token meets every requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSet>,
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
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}
