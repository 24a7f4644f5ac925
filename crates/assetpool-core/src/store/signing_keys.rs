//! The keys that sign access tokens: the records and [`SigningKeyStore`].

use super::StoreResult;
use crate::ids::SigningKeyId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A token-signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid`).
    pub kid: SigningKeyId,
    /// Always `EdDSA`.
    pub algorithm: String,
    /// The PKCS#8 private key, sealed (see [`crate::KeySealer`]).
    pub sealed_private_key: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing; `None` while active.
    pub retired_at: Option<DateTime<Utc>>,
    /// When its last token expires, after which it leaves the JWKS.
    pub retires_at: Option<DateTime<Utc>>,
}

impl SigningKeyRecord {
    /// Whether the key may be revoked (taken out of the JWKS at once): only
    /// once it no longer signs new tokens. The active key is replaced with
    /// `signing-keys rotate` first, so that servers always have a key to
    /// sign with.
    pub fn can_revoke(&self) -> bool {
        self.retired_at.is_some()
    }
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("sealed_private_key", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}

/// A stored signing key's new sealed form (see [`SigningKeyStore::reseal_signing_keys`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ResealedSigningKey {
    /// Key id (`kid`).
    pub kid: SigningKeyId,
    /// The value it replaces, as read (`plain:...`).
    pub previous: String,
    /// The new value (`xchacha20poly1305:...`).
    pub sealed: String,
}

impl std::fmt::Debug for ResealedSigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ResealedSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys that sign access tokens.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stores `key` as the active signing key, retiring the current one until `retire_until`.
    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_until: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Stores `key` as the first signing key unless one is already active;
    /// returns false if another writer got there first.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
    /// Replaces the sealed private key of each of `keys` in one transaction,
    /// each only if it still holds `previous`. Fails with `Conflict`, writing
    /// nothing, if any key is unknown or changed meanwhile. Appends nothing to
    /// the change feed: the keys themselves do not change.
    async fn reseal_signing_keys(&self, keys: &[ResealedSigningKey]) -> StoreResult<()>;
    /// Takes key `kid` out of the JWKS at once (its `retires_at` becomes
    /// `now`) and announces it on the change feed, so every server stops
    /// accepting its tokens. `NotFound` for an unknown key, `Conflict` when
    /// [`SigningKeyRecord::can_revoke`] refuses. Returns the key as revoked.
    async fn revoke_signing_key(
        &self,
        kid: &SigningKeyId,
        now: DateTime<Utc>,
    ) -> StoreResult<SigningKeyRecord>;
}
