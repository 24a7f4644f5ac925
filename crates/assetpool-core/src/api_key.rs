//! The API key format: `apk_<env>_<body><check>`.
//!
//! `<body>` is 32 base62 characters from a CSPRNG; `<check>` is the CRC32 (IEEE)
//! of everything before it, written as 6 base62 characters, most significant
//! first, left-padded with `0`. A key whose shape or checksum is wrong is
//! refused by [`ApiKeySecret::parse`] before any storage is touched.

use crate::Environment;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// Characters of the body shown in a key's non-secret prefix.
const PREFIX_BODY_CHARS: usize = 6;

/// Why a presented key was refused without a look-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFormatError {
    /// Not `apk_<env>_<38 base62 characters>`.
    #[error("the API key does not have the expected shape")]
    Shape,
    /// The checksum does not match.
    #[error("the API key checksum does not match")]
    Checksum,
}

/// The SHA-256 digest of a secret; what storage keeps instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes `secret` with SHA-256.
    pub fn of(secret: &str) -> Self {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// The digest as lowercase hex.
    pub fn to_hex(self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(SecretHash(bytes))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SecretHash({}..)", &self.to_hex()[..8])
    }
}

/// A well-formed API key. Its `Debug` never shows the secret.
pub struct ApiKeySecret {
    secret: SecretString,
    environment: Environment,
}

impl ApiKeySecret {
    /// Generates a new key for `environment` from the operating system's CSPRNG.
    pub fn generate(environment: Environment) -> Self {
        let mut random = rand::rngs::OsRng;
        let body: String = (0..BODY_LEN)
            .map(|_| char::from(BASE62[random.gen_range(0..BASE62.len())]))
            .collect();
        let head = format!("apk_{}_{body}", environment.short_name());
        let check = checksum(&head);
        ApiKeySecret {
            secret: SecretString::from(format!("{head}{check}")),
            environment,
        }
    }

    /// Checks the shape and checksum of a presented key. Touches no storage.
    pub fn parse(text: &str) -> Result<Self, ApiKeyFormatError> {
        let rest = text.strip_prefix("apk_").ok_or(ApiKeyFormatError::Shape)?;
        let (short_name, tail) = rest.split_once('_').ok_or(ApiKeyFormatError::Shape)?;
        let environment =
            Environment::from_short_name(short_name).ok_or(ApiKeyFormatError::Shape)?;
        if tail.len() != BODY_LEN + CHECK_LEN || !tail.bytes().all(is_base62) {
            return Err(ApiKeyFormatError::Shape);
        }
        let split = text.len() - CHECK_LEN;
        let (head, check) = text.split_at(split);
        if checksum(head) != check {
            return Err(ApiKeyFormatError::Checksum);
        }
        Ok(ApiKeySecret {
            secret: SecretString::from(text.to_owned()),
            environment,
        })
    }

    /// The environment named inside the key.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The hash under which storage knows this key.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.secret.expose_secret())
    }

    /// A non-secret prefix, enough to recognise the key: `apk_prod_AbC123`.
    pub fn prefix(&self) -> String {
        let text = self.secret.expose_secret();
        let head_len = "apk_".len() + self.environment.short_name().len() + 1;
        text.chars().take(head_len + PREFIX_BODY_CHARS).collect()
    }

    /// The secret itself, to show once to the person it is issued to.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ApiKeySecret")
            .field("environment", &self.environment)
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn is_base62(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

/// CRC32 (IEEE) of `head`, as 6 base62 digits, most significant first.
fn checksum(head: &str) -> String {
    let mut value = u64::from(crc32fast::hash(head.as_bytes()));
    let mut digits = [b'0'; CHECK_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&byte| char::from(byte)).collect()
}

/// Generates an opaque random token of `len` base62 characters after `prefix`.
pub fn random_token(prefix: &str, len: usize) -> SecretString {
    let mut random = rand::rngs::OsRng;
    let body: String = (0..len)
        .map(|_| char::from(BASE62[random.gen_range(0..BASE62.len())]))
        .collect();
    SecretString::from(format!("{prefix}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_keep_environment() {
        for environment in Environment::ALL {
            let key = ApiKeySecret::generate(environment);
            let text = key.expose().to_owned();
            assert!(text.starts_with(&format!("apk_{}_", environment.short_name())));
            assert_eq!(
                text.len(),
                5 + environment.short_name().len() + BODY_LEN + CHECK_LEN
            );
            let parsed = ApiKeySecret::parse(&text).unwrap();
            assert_eq!(parsed.environment(), environment);
            assert_eq!(parsed.hash(), key.hash());
        }
    }

    #[test]
    fn checksum_is_crc32_in_base62() {
        // CRC32("apk_dev_" + 32 zeros) computed independently and written in base62.
        let head = format!("apk_dev_{}", "0".repeat(32));
        let crc = crc32fast::hash(head.as_bytes());
        let mut expected = String::new();
        let mut value = crc;
        while value > 0 {
            expected.insert(0, char::from(BASE62[(value % 62) as usize]));
            value /= 62;
        }
        let expected = format!("{expected:0>6}");
        assert_eq!(checksum(&head), expected);
        assert!(ApiKeySecret::parse(&format!("{head}{expected}")).is_ok());
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let key = ApiKeySecret::generate(Environment::Production);
        let text = key.expose().to_owned();
        let bytes = text.as_bytes();
        for position in "apk_prod_".len()..bytes.len() {
            for &replacement in BASE62 {
                if replacement == bytes[position] {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[position] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                assert_eq!(
                    ApiKeySecret::parse(&changed).unwrap_err(),
                    ApiKeyFormatError::Checksum,
                    "position {position}"
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let key = ApiKeySecret::generate(Environment::Development);
        let text = key.expose();
        for bad in [
            "",
            "apk_",
            "apk_dev_",
            "apk_xyz_00000000000000000000000000000000000000",
            &text[..text.len() - 1],
            &format!("{text}0"),
            &text.replace("apk_", "APK_"),
            &format!("{}-{}", &text[..20], &text[21..]),
            "apk_dev_ééééééééééééééééééé",
        ] {
            assert_eq!(
                ApiKeySecret::parse(bad).unwrap_err(),
                ApiKeyFormatError::Shape,
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_and_debug_hide_the_secret() {
        let key = ApiKeySecret::generate(Environment::Staging);
        assert_eq!(key.prefix().len(), "apk_stg_".len() + PREFIX_BODY_CHARS);
        assert!(key.expose().starts_with(&key.prefix()));
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn hash_hex_round_trips() {
        let hash = SecretHash::of("x");
        assert_eq!(SecretHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(SecretHash::from_hex("zz"), None);
    }
}
