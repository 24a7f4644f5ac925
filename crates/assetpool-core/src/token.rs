//! Access tokens: EdDSA (Ed25519) JWTs in the RFC 9068 profile.
//!
//! Signing and verification are done by `jsonwebtoken` (its RustCrypto provider,
//! ed25519-dalek underneath; keys are generated with ring); this
//! module decides what is accepted: `alg` must be `EdDSA`, `typ` must be
//! `at+jwt`, `kid` must be one of the server's own keys (`jku`, `x5u` and `jwk`
//! are never consulted), `iss` and `aud` must match, `exp` must be present and a
//! number, and `nbf`/`iat` may not lie in the future beyond [`CLOCK_LEEWAY_SECONDS`].

use crate::sealer::{KeySealer, SealError};
use crate::store::SigningKeyRecord;
use crate::Environment;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use std::collections::HashMap;
use std::fmt;

/// Length of a raw Ed25519 public key.
const ED25519_PUBLIC_KEY_BYTES: usize = 32;

/// Tolerated clock difference for `nbf` and `iat`, in seconds.
pub const CLOCK_LEEWAY_SECONDS: i64 = 60;
/// Longest token accepted before any parsing, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The JWT `typ` of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token; the type lives in the wire crate, since it
/// is the token's wire format.
pub use assetpool_wire::AccessClaims;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, badly signed, wrong algorithm, type, key, issuer, audience or environment.
    #[error("invalid token")]
    Invalid,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
}

/// A freshly generated Ed25519 signing key.
pub struct GeneratedSigningKey {
    /// PKCS#8 document of the private key.
    pub pkcs8: Vec<u8>,
    /// Raw 32-byte public key.
    pub public_key: Vec<u8>,
}

/// Generates an Ed25519 key pair with the system CSPRNG.
pub fn generate_signing_key() -> Result<GeneratedSigningKey, SealError> {
    let random = ring::rand::SystemRandom::new();
    let document = Ed25519KeyPair::generate_pkcs8(&random)
        .map_err(|_| SealError::Malformed("key generation failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
        .map_err(|_| SealError::Malformed("generated key"))?;
    Ok(GeneratedSigningKey {
        pkcs8: document.as_ref().to_vec(),
        public_key: pair.public_key().as_ref().to_vec(),
    })
}

/// The server's signing keys in usable form: one to sign with, all to verify with.
/// Key ids are kept as the `kid` text of token headers and the JWKS.
pub struct KeyRing {
    active: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    published: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("KeyRing")
            .field("active", &self.active.as_ref().map(|(kid, _)| kid))
            .field("published", &self.published.len())
            .finish()
    }
}

impl KeyRing {
    /// An empty ring (verifies nothing, signs nothing).
    pub fn empty() -> Self {
        KeyRing {
            active: None,
            verifying: HashMap::new(),
            published: Vec::new(),
        }
    }

    /// Whether the ring holds no key at all (before the first load).
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.verifying.is_empty()
    }

    /// Builds the ring from stored keys: the active one signs; every key not
    /// yet past `retires_at` verifies and is published.
    pub fn from_records(
        records: &[SigningKeyRecord],
        sealer: &KeySealer,
        now: DateTime<Utc>,
    ) -> Result<Self, SealError> {
        let mut ring = KeyRing::empty();
        for record in records {
            let live = record.retires_at.is_none_or(|retires_at| retires_at > now);
            if !live {
                continue;
            }
            // jsonwebtoken's EdDSA verifier assumes a 32-byte key and would
            // panic on a shorter one; a damaged record is left out instead.
            if record.public_key.len() != ED25519_PUBLIC_KEY_BYTES {
                tracing::error!(kid = %record.kid, "signing key left out: its public key is not 32 bytes");
                continue;
            }
            if record.retired_at.is_none() && ring.active.is_none() {
                let pkcs8 = sealer.open(record.kid.as_str(), &record.sealed_private_key)?;
                ring.active = Some((record.kid.to_string(), EncodingKey::from_ed_der(&pkcs8)));
            }
            ring.verifying.insert(
                record.kid.to_string(),
                DecodingKey::from_ed_der(&record.public_key),
            );
            ring.published
                .push((record.kid.to_string(), record.public_key.clone()));
        }
        Ok(ring)
    }

    /// Whether a token signed by `kid` can verify.
    pub fn verifies(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    /// The id of the key that signs new tokens.
    pub fn active_kid(&self) -> Option<&str> {
        self.active.as_ref().map(|(kid, _)| kid.as_str())
    }

    /// Published keys as (kid, raw public key), for the JWKS.
    pub fn published(&self) -> &[(String, Vec<u8>)] {
        &self.published
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let (kid, key) = self.active.as_ref().ok_or(TokenError::Invalid)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(|_| TokenError::Invalid)
    }

    /// Verifies a token's signature and claims against `expected` at `now`.
    pub fn verify(
        &self,
        token: &str,
        expected: &TokenExpectations,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
        let key = self.verifying.get(kid).ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["exp", "iat", "nbf", "iss", "aud", "sub"]
            .map(String::from)
            .into();
        validation.set_issuer(&[&expected.issuer]);
        validation.set_audience(&[&expected.audience]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let now_seconds = now.timestamp();
        if claims.env != expected.environment
            || claims.nbf > now_seconds + CLOCK_LEEWAY_SECONDS
            || claims.iat > now_seconds + CLOCK_LEEWAY_SECONDS
        {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now_seconds {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The JWKS `x` value of a raw public key.
    pub fn encode_public_key(public_key: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(public_key)
    }
}

/// What a server requires of the tokens it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenExpectations {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Required `env`.
    pub environment: Environment,
}
