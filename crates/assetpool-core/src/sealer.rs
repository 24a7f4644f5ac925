//! Protection of signing keys at rest.
//!
//! With a key-encryption key (32 bytes, base64 or 64 hex characters), private
//! keys are sealed with XChaCha20-Poly1305 (`xchacha20poly1305:` + base64 of
//! nonce and ciphertext, the key id bound as associated data). Without one
//! they are stored as `plain:` + base64.
//!
//! Once a key-encryption key is configured, [`KeySealer::open`] refuses
//! `plain:` values: a key stored unsealed (by an earlier version, an import or
//! a write to the database) is sealed only through [`KeySealer::reseal`], the
//! step of the `signing-keys seal` migration, so that an active signing key
//! slipped into the database unsealed is not used to sign. What sealing does
//! not give: integrity of the published public keys. Verification uses each
//! stored record's public key, which is not bound to its sealed private key,
//! so whoever can write to the database can still add a key that verifies
//! tokens they made; the database must be guarded as the signing keys are.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretSlice};

const SEALED_PREFIX: &str = "xchacha20poly1305:";
const PLAIN_PREFIX: &str = "plain:";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why a sealed key could not be opened or a key-encryption key not read.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key is sealed but no key-encryption key is configured.
    #[error("signing keys are encrypted at rest; set ASSETPOOL_SIGNING_KEY_KEK (or --signing-key-kek-file) to the key-encryption key")]
    KeyEncryptionKeyMissing,
    /// The configured key-encryption key does not open the key.
    #[error("the configured key-encryption key does not decrypt the stored signing keys")]
    WrongKey,
    /// The key (its id given) is stored unsealed although a key-encryption
    /// key is configured.
    #[error("signing key {0} is stored unencrypted although a key-encryption key is configured; run `assetpool signing-keys seal` to encrypt it")]
    Unsealed(String),
    /// The stored value or the key-encryption key is malformed.
    #[error("malformed key material: {0}")]
    Malformed(&'static str),
}

/// Seals and opens private signing keys (and webhook secrets).
#[derive(Clone)]
pub struct KeySealer {
    cipher: Option<XChaCha20Poly1305>,
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeySealer")
            .field("encrypting", &self.cipher.is_some())
            .finish()
    }
}

impl KeySealer {
    /// A sealer that stores keys unencrypted.
    pub fn plain() -> Self {
        KeySealer { cipher: None }
    }

    /// A sealer from a key-encryption key written as base64 (or 64 hex characters) of 32 bytes.
    pub fn from_encoded_key(encoded: &SecretBox<str>) -> Result<Self, SealError> {
        let text = encoded.expose_secret().trim();
        let bytes =
            if text.len() == 2 * KEY_LEN && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                (0..KEY_LEN)
                    .map(|index| u8::from_str_radix(&text[index * 2..index * 2 + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| SealError::Malformed("key-encryption key"))?
            } else {
                STANDARD
                    .decode(text)
                    .map_err(|_| SealError::Malformed("key-encryption key is not base64"))?
            };
        if bytes.len() != KEY_LEN {
            return Err(SealError::Malformed(
                "key-encryption key must be 32 bytes (base64 or hex)",
            ));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| SealError::Malformed("key-encryption key"))?;
        Ok(KeySealer {
            cipher: Some(cipher),
        })
    }

    /// A new random key-encryption key: 32 bytes from the operating system's
    /// generator, written as base64, the form [`KeySealer::from_encoded_key`] reads.
    pub fn generate_encoded_key() -> SecretBox<str> {
        let mut bytes = SecretBox::new(Box::new([0u8; KEY_LEN]));
        rand::rngs::OsRng.fill_bytes(bytes.expose_secret_mut());
        SecretBox::from(STANDARD.encode(bytes.expose_secret()))
    }

    /// Whether a stored key was sealed with a key-encryption key.
    pub fn is_encrypted(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// Whether a stored key is unsealed (`plain:`).
    pub fn is_plain(stored: &str) -> bool {
        stored.starts_with(PLAIN_PREFIX)
    }

    /// Whether keys are encrypted at rest.
    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    /// Seals a private key; `kid` is bound to the ciphertext.
    pub fn seal(&self, kid: &str, private_key: &[u8]) -> Result<String, SealError> {
        let Some(cipher) = &self.cipher else {
            return Ok(format!("{PLAIN_PREFIX}{}", STANDARD.encode(private_key)));
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: private_key,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| SealError::Malformed("encryption failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(sealed)))
    }

    /// Opens a stored private key. With a key-encryption key, a `plain:`
    /// value is refused ([`SealError::Unsealed`]): see [`KeySealer::reseal`].
    pub fn open(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        if self.cipher.is_some() && Self::is_plain(sealed) {
            return Err(SealError::Unsealed(kid.to_owned()));
        }
        self.open_allowing_plain(kid, sealed)
    }

    /// Opens a stored value, `plain:` included whatever the configuration.
    /// For owner webhook secrets, which are stored unsealed when they were set
    /// without a key-encryption key and stay so until the webhook is set again;
    /// signing keys go through [`KeySealer::open`].
    pub fn open_allowing_plain(&self, id: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        if let Some(encoded) = sealed.strip_prefix(PLAIN_PREFIX) {
            return STANDARD
                .decode(encoded)
                .map_err(|_| SealError::Malformed("stored signing key"));
        }
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Malformed("stored signing key"))?;
        let cipher = self
            .cipher
            .as_ref()
            .ok_or(SealError::KeyEncryptionKeyMissing)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SealError::Malformed("stored signing key"))?;
        if bytes.len() <= NONCE_LEN {
            return Err(SealError::Malformed("stored signing key"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKey)
    }

    /// The migration of one stored key to this sealer's key-encryption key:
    /// `Some(sealed)` for a `plain:` value, `None` for a value already sealed
    /// with this key (checked by opening it). Fails without a key-encryption
    /// key, and with [`SealError::WrongKey`] for a value sealed with another.
    pub fn reseal(&self, kid: &str, stored: &str) -> Result<Option<String>, SealError> {
        if !self.encrypts() {
            return Err(SealError::KeyEncryptionKeyMissing);
        }
        if Self::is_plain(stored) {
            let private_key = SecretSlice::from(self.open_allowing_plain(kid, stored)?);
            return self.seal(kid, private_key.expose_secret()).map(Some);
        }
        self.open(kid, stored)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> SecretBox<str> {
        SecretBox::from(STANDARD.encode([byte; 32]))
    }

    #[test]
    fn sealed_round_trip_and_wrong_key() {
        let sealer = KeySealer::from_encoded_key(&kek(7)).unwrap();
        let sealed = sealer.seal("sig_1", b"private").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert_eq!(sealer.open("sig_1", &sealed).unwrap(), b"private");
        assert!(matches!(
            sealer.open("sig_2", &sealed),
            Err(SealError::WrongKey)
        ));
        let other = KeySealer::from_encoded_key(&kek(8)).unwrap();
        assert!(matches!(
            other.open("sig_1", &sealed),
            Err(SealError::WrongKey)
        ));
        assert!(matches!(
            KeySealer::plain().open("sig_1", &sealed),
            Err(SealError::KeyEncryptionKeyMissing)
        ));
    }

    #[test]
    fn plain_keys_open_without_kek_and_are_refused_with_one() {
        let stored = KeySealer::plain().seal("sig_1", b"private").unwrap();
        assert!(KeySealer::is_plain(&stored));
        assert_eq!(
            KeySealer::plain().open("sig_1", &stored).unwrap(),
            b"private"
        );
        let sealer = KeySealer::from_encoded_key(&kek(7)).unwrap();
        assert!(matches!(
            sealer.open("sig_1", &stored),
            Err(SealError::Unsealed(kid)) if kid == "sig_1"
        ));
        assert_eq!(
            sealer.open_allowing_plain("sig_1", &stored).unwrap(),
            b"private"
        );
    }

    #[test]
    fn reseal_seals_plain_keys_once_and_checks_sealed_ones() {
        let stored = KeySealer::plain().seal("sig_1", b"private").unwrap();
        let sealer = KeySealer::from_encoded_key(&kek(7)).unwrap();
        let sealed = sealer.reseal("sig_1", &stored).unwrap().unwrap();
        assert!(KeySealer::is_encrypted(&sealed));
        assert_eq!(sealer.open("sig_1", &sealed).unwrap(), b"private");
        assert_eq!(sealer.reseal("sig_1", &sealed).unwrap(), None);
        let other = KeySealer::from_encoded_key(&kek(8)).unwrap();
        assert!(matches!(
            other.reseal("sig_1", &sealed),
            Err(SealError::WrongKey)
        ));
        assert!(matches!(
            KeySealer::plain().reseal("sig_1", &stored),
            Err(SealError::KeyEncryptionKeyMissing)
        ));
    }

    #[test]
    fn generated_keys_are_random_and_readable() {
        let first = KeySealer::generate_encoded_key();
        let second = KeySealer::generate_encoded_key();
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert_eq!(STANDARD.decode(first.expose_secret()).unwrap().len(), 32);
        let sealer = KeySealer::from_encoded_key(&first).unwrap();
        let sealed = sealer.seal("sig_1", b"private").unwrap();
        let again = KeySealer::from_encoded_key(&first).unwrap();
        assert_eq!(again.open("sig_1", &sealed).unwrap(), b"private");
    }

    #[test]
    fn rejects_short_kek() {
        assert!(KeySealer::from_encoded_key(&SecretBox::from(STANDARD.encode([1u8; 16]))).is_err());
    }
}
