//! Public documents under `/.well-known/`.

use serde::{Deserialize, Serialize};

/// One public key of the JWKS (RFC 7517, RFC 8037 for `OKP`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// Key id, as in the tokens' `kid` header.
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// The JSON Web Key Set of `GET /.well-known/jwks.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JwkSet {
    /// The public keys that verify access tokens.
    pub keys: Vec<Jwk>,
}

/// RFC 8414 authorization server metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthorizationServerMetadata {
    /// The issuer URL, as in the tokens' `iss` claim.
    pub issuer: String,
    /// URL of `POST /oauth/token`.
    pub token_endpoint: String,
    /// URL of the JWKS.
    pub jwks_uri: String,
    /// URL of `POST /oauth/introspect` (RFC 7662; authenticated by an API key).
    pub introspection_endpoint: String,
    /// `password` and `refresh_token`.
    pub grant_types_supported: Vec<String>,
    /// Empty: no authorization endpoint.
    pub response_types_supported: Vec<String>,
    /// `none`: no client authentication.
    pub token_endpoint_auth_methods_supported: Vec<String>,
}
