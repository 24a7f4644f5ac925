//! Applications and their API keys: the records and [`KeyStore`].

use super::{CreationPage, StoreResult};
use crate::ids::{ApplicationId, KeyId};
use crate::limits::KeyLimits;
use crate::{ApiKeyStatus, Environment, ScopeSet, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// An application: the owner of one or more API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    /// Application id.
    pub id: ApplicationId,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: KeyId,
    /// Owning application.
    pub application_id: ApplicationId,
    /// Display name.
    pub name: String,
    /// Environment the key is for.
    pub environment: Environment,
    /// SHA-256 of the secret.
    pub key_hash: SecretHash,
    /// Non-secret prefix of the secret.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry (or end of rotation grace).
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Revocation reason.
    pub revoked_reason: Option<String>,
    /// Successor key after a rotation.
    pub successor_id: Option<KeyId>,
    /// Last authenticated use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Rate limit and quota (none by default).
    pub limits: KeyLimits,
    /// What the key's application may do (`None`: unrestricted).
    pub scopes: Option<ScopeSet>,
}

impl ApiKeyRecord {
    /// The key's lifecycle state at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> ApiKeyStatus {
        if self.revoked_at.is_some() {
            ApiKeyStatus::Revoked
        } else if self.expires_at.is_some_and(|expires_at| expires_at <= now) {
            ApiKeyStatus::Expired
        } else if self.successor_id.is_some() {
            ApiKeyStatus::Rotating
        } else {
            ApiKeyStatus::Active
        }
    }

    /// Whether the key may be rotated at `now`: only an active key (not
    /// already rotated, revoked or expired).
    pub fn can_rotate(&self, now: DateTime<Utc>) -> bool {
        self.status(now) == ApiKeyStatus::Active
    }

    /// Whether the key still lets its application in at `now` (active, or
    /// rotating within its grace period).
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.status(now),
            ApiKeyStatus::Active | ApiKeyStatus::Rotating
        )
    }
}

/// Whether an application's sessions end at `now`, its keys being
/// `remaining`: when none of them is usable any more (its last usable key was
/// revoked), nothing can present its tokens, and they are revoked.
pub fn sessions_end_with(remaining: &[ApiKeyRecord], now: DateTime<Utc>) -> bool {
    !remaining.iter().any(|key| key.is_usable(now))
}

/// What `keys update` changes on a key (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New limits (replacing the old ones as a whole).
    pub limits: Option<KeyLimits>,
    /// New scopes, replacing the old set (`Some(None)`: unrestricted).
    pub scopes: Option<Option<ScopeSet>>,
}

/// Applications and their API keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Creates an application.
    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()>;
    /// Finds an application.
    async fn application(&self, id: &ApplicationId) -> StoreResult<Option<ApplicationRecord>>;
    /// Stores a new key (its application must exist).
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Finds a key by the hash of its secret.
    async fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>>;
    /// Finds a key by id.
    async fn api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKeyRecord>>;
    /// Lists keys, optionally of one environment, in creation order, one
    /// page (keyset pagination in storage).
    async fn list_api_keys(
        &self,
        environment: Option<Environment>,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Keys neither revoked nor rotated whose expiry is after `after` and at
    /// or before `until`, soonest first (the expiry warnings).
    async fn api_keys_expiring(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes a key and the sessions opened through it (a revoked key may
    /// have leaked; rotation, which does not revoke, keeps them). When it was
    /// its application's last usable key, all the application's sessions
    /// are revoked too. Returns the updated key.
    async fn revoke_api_key(
        &self,
        id: &KeyId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Rotates a key: stores `successor` and ends the old key's life at
    /// `grace_until`. Fails with `Conflict` if the key was already rotated or is not usable.
    async fn rotate_api_key(
        &self,
        id: &KeyId,
        successor: &ApiKeyRecord,
        grace_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Records last-use times (a batch from the usage writer).
    async fn record_api_key_use(&self, uses: &[(KeyId, DateTime<Utc>)]) -> StoreResult<()>;
    /// Changes a key's name, limits or scopes and announces it (servers drop
    /// it from memory, so narrowed scopes apply to its live tokens). Returns
    /// the updated key.
    async fn update_api_key(
        &self,
        id: &KeyId,
        update: &ApiKeyUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn key() -> ApiKeyRecord {
        ApiKeyRecord {
            id: "key_1".into(),
            application_id: "app_1".into(),
            name: "shop".into(),
            environment: Environment::Production,
            key_hash: SecretHash([0; 32]),
            prefix: "apk_prod_x".into(),
            created_at: at(0),
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            successor_id: None,
            last_used_at: None,
            limits: KeyLimits::default(),
            scopes: None,
        }
    }

    #[test]
    fn only_active_keys_rotate() {
        assert!(key().can_rotate(at(1)));
        let rotating = ApiKeyRecord {
            successor_id: Some("key_2".into()),
            expires_at: Some(at(10)),
            ..key()
        };
        assert!(!rotating.can_rotate(at(1)));
        let revoked = ApiKeyRecord {
            revoked_at: Some(at(1)),
            ..key()
        };
        assert!(!revoked.can_rotate(at(2)));
        let expired = ApiKeyRecord {
            expires_at: Some(at(1)),
            ..key()
        };
        assert!(!expired.can_rotate(at(1)));
    }

    #[test]
    fn sessions_end_with_the_last_usable_key() {
        let revoked = ApiKeyRecord {
            revoked_at: Some(at(1)),
            ..key()
        };
        let rotating = ApiKeyRecord {
            successor_id: Some("key_2".into()),
            expires_at: Some(at(10)),
            ..key()
        };
        assert!(sessions_end_with(std::slice::from_ref(&revoked), at(2)));
        assert!(sessions_end_with(&[], at(2)));
        assert!(!sessions_end_with(&[revoked.clone(), key()], at(2)));
        // A key in its rotation grace still lets the application in; past it, not.
        assert!(!sessions_end_with(
            &[revoked.clone(), rotating.clone()],
            at(2)
        ));
        assert!(sessions_end_with(&[revoked, rotating], at(10)));
    }
}
