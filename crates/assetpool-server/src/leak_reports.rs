//! Who may report leaked keys: the senders of `POST /api/keys/leaked`,
//! checked over the exact body bytes ([`LeakReportVerifier`], built once at
//! start from [`LeakReportSettings`]).
//!
//! - As GitHub's secret scanning signs: `Github-Public-Key-Identifier` names
//!   one of the keys of `--leak-report-keys` (GitHub's public-keys JSON), and
//!   `Github-Public-Key-Signature` is the base64 ASN.1 DER ECDSA P-256
//!   SHA-256 signature of the body (checked with `ring`).
//! - Or with the shared secret of `--leak-report-secret`:
//!   `X-Assetpool-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//!   "<t>.<body>")>`, as assetpool signs its own webhooks; a `t` more than
//!   [`HMAC_TOLERANCE_SECONDS`] away from the server's clock is refused, so
//!   a captured report cannot be replayed later.
//!
//! The headers are checked first ([`LeakReportVerifier::signature`]: a
//! known key, a signature of the right shape, a fresh timestamp), before
//! any byte of the body is read; the signature itself is then checked over
//! the body ([`Signature::verify`]).

use crate::error::ApiError;
use crate::settings::LeakReportSettings;
use anyhow::Context as _;
use assetpool_core::leaks::LeakPolicy;
use assetpool_wire::ErrorCode;
use axum::http::HeaderMap;
use base64::Engine as _;
use ring::{hmac, signature};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::SubjectPublicKeyInfoDer;

/// Header naming the scanner's public key.
pub const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";
/// Header carrying the scanner's ECDSA signature (base64 DER).
pub const KEY_SIGNATURE_HEADER: &str = "github-public-key-signature";
/// Header carrying the shared-secret signature (`t=<unix seconds>,v1=<hex>`).
pub const HMAC_SIGNATURE_HEADER: &str = "x-assetpool-signature";
/// How far the `t` of a shared-secret signature may be from the server's
/// clock, either way (five minutes, as for assetpool's own webhooks).
pub const HMAC_TOLERANCE_SECONDS: i64 = 300;
/// Longest DER encoding of an ECDSA P-256 signature (two 33-byte integers
/// and their headers).
const MAX_ECDSA_SIGNATURE_BYTES: usize = 72;
/// Length of an HMAC-SHA256 tag.
const HMAC_TAG_BYTES: usize = 32;

/// The DER head of a SubjectPublicKeyInfo of an uncompressed P-256 point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes) }.
/// Every such SPKI starts with exactly these bytes, so comparing them checks
/// the algorithm and the curve; what follows is the point.
const P256_SPKI_HEAD: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P256_POINT_LEN: usize = 65;

/// Checks the senders of leak reports; built once at start.
pub struct LeakReportVerifier {
    /// Key identifier to uncompressed P-256 point.
    public_keys: HashMap<String, Vec<u8>>,
    secret: Option<hmac::Key>,
    policy: LeakPolicy,
}

impl std::fmt::Debug for LeakReportVerifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LeakReportVerifier")
            .field("public_keys", &self.public_keys.keys().collect::<Vec<_>>())
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("policy", &self.policy)
            .finish()
    }
}

/// GitHub's public-keys document.
#[derive(Deserialize)]
struct PublicKeysFile {
    public_keys: Vec<PublicKeyEntry>,
}

#[derive(Deserialize)]
struct PublicKeyEntry {
    key_identifier: String,
    key: String,
}

/// The verifier in use: read at start, and read again, whole, by
/// [`LeakReportKeys::reload`] (SIGHUP), so a rotated public-keys file takes
/// effect without a restart.
#[derive(Debug)]
pub struct LeakReportKeys {
    settings: LeakReportSettings,
    current: RwLock<Arc<LeakReportVerifier>>,
}

impl LeakReportKeys {
    /// Loads the verifier of `settings` (see [`LeakReportVerifier::load`]).
    pub fn load(settings: LeakReportSettings) -> anyhow::Result<Self> {
        let verifier = LeakReportVerifier::load(&settings)?;
        Ok(LeakReportKeys {
            settings,
            current: RwLock::new(Arc::new(verifier)),
        })
    }

    /// The verifier in use.
    pub fn current(&self) -> Arc<LeakReportVerifier> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the public-keys file again; on an error the keys in use stay.
    pub fn reload(&self) -> anyhow::Result<()> {
        let verifier = Arc::new(LeakReportVerifier::load(&self.settings)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = verifier;
        Ok(())
    }
}

impl LeakReportVerifier {
    /// Reads the public-keys file (if any) and keeps the secret (if any).
    /// A file that cannot be read, is not GitHub's format, holds no key or a
    /// key other than P-256 is an error naming the file.
    pub fn load(settings: &LeakReportSettings) -> anyhow::Result<Self> {
        let public_keys = match &settings.public_keys_file {
            Some(path) => read_public_keys(path)?,
            None => HashMap::new(),
        };
        let secret = settings
            .secret
            .as_ref()
            .map(|secret| secret.expose_secret().trim().to_owned())
            .filter(|secret| !secret.is_empty())
            .map(|secret| hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()));
        Ok(LeakReportVerifier {
            public_keys,
            secret,
            policy: settings.policy,
        })
    }

    /// A verifier refusing everything (the endpoint is off).
    pub fn disabled() -> Self {
        LeakReportVerifier {
            public_keys: HashMap::new(),
            secret: None,
            policy: LeakPolicy::Alert,
        }
    }

    /// Whether any sender is configured.
    pub fn enabled(&self) -> bool {
        !self.public_keys.is_empty() || self.secret.is_some()
    }

    /// The policy for live keys.
    pub fn policy(&self) -> LeakPolicy {
        self.policy
    }

    /// The signature a request's headers carry, checked for everything
    /// that can be checked without the body: the scanner's ECDSA signature
    /// when `Github-Public-Key-Identifier` is present (a known key, a
    /// base64 DER signature of a P-256 signature's size), else the
    /// shared-secret HMAC (`t` within [`HMAC_TOLERANCE_SECONDS`] of `now`,
    /// unix seconds, and a 32-byte hex tag). Anything else is 403 `forbidden`.
    pub fn signature(&self, headers: &HeaderMap, now: i64) -> Result<Signature<'_>, ApiError> {
        if let Some(identifier) = header(headers, KEY_IDENTIFIER_HEADER) {
            let point = self
                .public_keys
                .get(identifier.trim())
                .ok_or_else(|| forbidden("the report is signed with an unknown key"))?;
            let signature = header(headers, KEY_SIGNATURE_HEADER)
                .and_then(|value| {
                    base64::engine::general_purpose::STANDARD
                        .decode(value.trim())
                        .ok()
                })
                .filter(|bytes| (8..=MAX_ECDSA_SIGNATURE_BYTES).contains(&bytes.len()))
                .ok_or_else(|| forbidden("the report signature is missing or malformed"))?;
            return Ok(Signature::Ecdsa { point, signature });
        }
        if let (Some(key), Some(value)) = (&self.secret, header(headers, HMAC_SIGNATURE_HEADER)) {
            let (timestamp, tag) = parse_hmac_header(value).ok_or_else(|| {
                forbidden("the report signature is malformed (expected t=<unix seconds>,v1=<hex>)")
            })?;
            if timestamp.abs_diff(now) > HMAC_TOLERANCE_SECONDS.unsigned_abs() {
                return Err(forbidden(
                    "the report signature's timestamp is more than 5 minutes away",
                ));
            }
            return Ok(Signature::Hmac {
                key,
                timestamp,
                tag,
            });
        }
        Err(forbidden("the report is not signed by a configured sender"))
    }
}

/// A signature taken from a request's headers ([`LeakReportVerifier::signature`]),
/// to be checked over the body.
pub enum Signature<'a> {
    /// GitHub's: an ECDSA P-256 SHA-256 signature of the body.
    Ecdsa {
        /// The signing key's uncompressed point.
        point: &'a [u8],
        /// The DER signature.
        signature: Vec<u8>,
    },
    /// The shared secret's: HMAC-SHA256 of `"<timestamp>.<body>"`.
    Hmac {
        /// The shared secret.
        key: &'a hmac::Key,
        /// The signed timestamp (unix seconds), already found fresh.
        timestamp: i64,
        /// The tag.
        tag: Vec<u8>,
    },
}

impl Signature<'_> {
    /// Checks the signature over the exact body bytes (the HMAC in constant
    /// time); a mismatch is 403 `forbidden`.
    pub fn verify(&self, body: &[u8]) -> Result<(), ApiError> {
        let matches = match self {
            Signature::Ecdsa { point, signature } => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(body, signature)
                    .is_ok()
            }
            Signature::Hmac {
                key,
                timestamp,
                tag,
            } => {
                let prefix = format!("{timestamp}.");
                let mut signed = Vec::with_capacity(prefix.len() + body.len());
                signed.extend_from_slice(prefix.as_bytes());
                signed.extend_from_slice(body);
                hmac::verify(key, &signed, tag).is_ok()
            }
        };
        if matches {
            Ok(())
        } else {
            Err(forbidden("the report signature does not match"))
        }
    }
}

/// `t=<unix seconds>,v1=<64 hex digits>` (each once, in either order).
fn parse_hmac_header(value: &str) -> Option<(i64, Vec<u8>)> {
    let mut timestamp = None;
    let mut tag = None;
    for pair in value.split(',') {
        let (name, field) = pair.trim().split_once('=')?;
        match name {
            "t" if timestamp.is_none() => {
                if field.is_empty()
                    || field.len() > 12
                    || !field.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                timestamp = Some(field.parse::<i64>().ok()?);
            }
            "v1" if tag.is_none() => {
                tag = Some(decode_hex(field).filter(|bytes| bytes.len() == HMAC_TAG_BYTES)?);
            }
            _ => return None,
        }
    }
    Some((timestamp?, tag?))
}

fn forbidden(message: &'static str) -> ApiError {
    ApiError::with_message(ErrorCode::Forbidden, message)
}

/// One header's value as text; a repeated header counts as absent (refused).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

fn read_public_keys(path: &Path) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the leak report keys file {shown}"))?;
    let file: PublicKeysFile = serde_json::from_str(&text).map_err(|_| {
        anyhow::anyhow!(
            "invalid leak report keys file {shown}: expected {{\"public_keys\": [{{\"key_identifier\", \"key\"}}]}}"
        )
    })?;
    if file.public_keys.is_empty() {
        anyhow::bail!("invalid leak report keys file {shown}: it lists no key");
    }
    let mut keys = HashMap::new();
    for entry in file.public_keys {
        let point = p256_point(&entry.key).ok_or_else(|| {
            anyhow::anyhow!(
                "invalid leak report keys file {shown}: key {:?} is not a PEM P-256 public key",
                entry.key_identifier
            )
        })?;
        keys.insert(entry.key_identifier.trim().to_owned(), point);
    }
    Ok(keys)
}

/// The uncompressed point of a PEM `PUBLIC KEY` that is an ECDSA P-256 key.
fn p256_point(pem: &str) -> Option<Vec<u8>> {
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).ok()?;
    let point = spki.as_ref().strip_prefix(&P256_SPKI_HEAD[..])?;
    (point.len() == P256_POINT_LEN && point.first() == Some(&0x04)).then(|| point.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_or_refuses() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é0"), None);
    }

    #[test]
    fn only_p256_public_keys_are_accepted() {
        let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = p256_point(&ecdsa.public_key_pem()).unwrap();
        assert_eq!(point.len(), P256_POINT_LEN);
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(p256_point(&p384.public_key_pem()).is_none());
        let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(p256_point(&ed25519.public_key_pem()).is_none());
        assert!(p256_point("not a pem").is_none());
    }
}
