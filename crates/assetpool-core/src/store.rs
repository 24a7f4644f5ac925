//! The storage boundary: one object-safe async trait, [`Store`], held as
//! `Arc<dyn Store>`, and the records it reads and writes.
//!
//! Each method is one atomic operation named after its intent. Every mutation
//! that other servers must learn about appends a [`Change`] in the same
//! transaction; servers follow the change feed to keep their in-memory state fresh.

use crate::export::ExportRecord;
use crate::limits::KeyLimits;
use crate::{ApiKeyStatus, Environment, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A storage failure. A database error is never turned into "not found".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// The write conflicts with existing data (e.g. a duplicate email).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Storage cannot be reached right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Other(String),
}

/// The reason of the `Conflict` [`Store::import_records`] reports on a
/// database that already holds data.
pub const DATABASE_NOT_EMPTY: &str = "the database is not empty";

/// Result of a storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// An application: the owner of one or more API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    /// Application id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: String,
    /// Owning application.
    pub application_id: String,
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
    pub successor_id: Option<String>,
    /// Last authenticated use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Rate limit and quota (none by default).
    pub limits: KeyLimits,
}

/// What `keys update` changes on a key (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New limits (replacing the old ones as a whole).
    pub limits: Option<KeyLimits>,
}

/// Requests counted against a key's quota in one period, by one server
/// since its last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDelta {
    /// Key id.
    pub key_id: String,
    /// Start of the quota period.
    pub period_start: DateTime<Utc>,
    /// Requests to add.
    pub requests: u64,
}

/// A login-failure counter: per (account, address), per address or per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCounter {
    /// Failures in the current window.
    pub failures: u32,
    /// The latest failure.
    pub last_failure: DateTime<Utc>,
}

/// Everything the login throttle needs to decide on one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures of this account from this address.
    pub pair: Option<FailureCounter>,
    /// Failures from this address, all accounts.
    pub address: Option<FailureCounter>,
    /// Failures of this account, all addresses.
    pub account: Option<FailureCounter>,
    /// Latest successful login of this account from this address.
    pub known_since: Option<DateTime<Utc>>,
}

/// A failed login to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    /// Normalised account (email), known or not.
    pub account: String,
    /// Client address.
    pub address: String,
    /// The API key the attempt came through (evidence for alerts).
    pub api_key_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Counters whose latest failure is older than this start again from zero.
    pub window_start: DateTime<Utc>,
}

/// Which counter a [`ThrottleEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// One account from one address.
    Pair,
    /// One address, all accounts.
    Address,
    /// One account, all addresses.
    Account,
}

impl ThrottleScope {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleScope::Pair => "pair",
            ThrottleScope::Address => "address",
            ThrottleScope::Account => "account",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pair" => Some(ThrottleScope::Pair),
            "address" => Some(ThrottleScope::Address),
            "account" => Some(ThrottleScope::Account),
            _ => None,
        }
    }
}

/// One stored failure counter, as support staff see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleEntry {
    /// Which counter.
    pub scope: ThrottleScope,
    /// Account (empty for the address scope).
    pub account: String,
    /// Address (empty for the account scope).
    pub address: String,
    /// The counter.
    pub counter: FailureCounter,
    /// The API key of the latest failure.
    pub api_key_id: Option<String>,
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
}

/// A user account. `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// User id.
    pub id: String,
    /// Normalised (NFKC, lowercase) email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// May use the admin API.
    pub admin: bool,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A new login session with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id (`sid` claim).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The application of the API key used to log in.
    pub application_id: String,
    /// The API key used to log in.
    pub api_key_id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry of the access token issued with it.
    pub access_expires_at: DateTime<Utc>,
    /// Hash of the first refresh token.
    pub refresh_hash: SecretHash,
    /// Expiry of the first refresh token.
    pub refresh_expires_at: DateTime<Utc>,
}

/// What a refresh presents and what it would issue.
#[derive(Debug, Clone)]
pub struct SpendRefreshToken {
    /// Hash of the presented refresh token.
    pub refresh_hash: SecretHash,
    /// The application of the API key presented with it.
    pub application_id: String,
    /// Now.
    pub now: DateTime<Utc>,
    /// Hash of the successor refresh token.
    pub new_refresh_hash: SecretHash,
    /// Expiry of the successor refresh token.
    pub new_refresh_expires_at: DateTime<Utc>,
    /// Expiry of the access token about to be issued.
    pub access_expires_at: DateTime<Utc>,
}

/// The session a refresh token renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewedSession {
    /// Session id.
    pub session_id: String,
    /// The user.
    pub user: UserRecord,
}

/// Outcome of [`Store::spend_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live and is now spent; a successor was stored.
    Renewed(RenewedSession),
    /// The token had already been spent: the whole session is (now) revoked.
    /// A spent token is always reported as reused, even once its session is revoked.
    Reused {
        /// The revoked session.
        session_id: String,
    },
    /// Unknown, expired, of a revoked session (and not spent), of another
    /// application, or of a disabled user.
    Invalid,
}

/// A token-signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid`).
    pub kid: String,
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

/// A mutation other servers must apply to their in-memory state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An API key was created, revoked, rotated or changed: drop it from caches.
    ApiKey {
        /// Hash of the key.
        key_hash: SecretHash,
    },
    /// A session was revoked; its access tokens are refused until `until`.
    SessionRevoked {
        /// Session id.
        session_id: String,
        /// Latest expiry of the session's access tokens.
        until: DateTime<Utc>,
    },
    /// The set of signing keys changed.
    SigningKeys,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Position in the feed (increasing).
    pub id: i64,
    /// What changed.
    pub change: Change,
}

/// A revoked session whose access tokens may still be unexpired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    /// Session id.
    pub session_id: String,
    /// Latest expiry of its access tokens.
    pub until: DateTime<Utc>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("admin", &self.admin)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .finish()
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

/// Durable state of assetpool. Implemented once per backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that storage answers.
    async fn ping(&self) -> StoreResult<()>;

    /// The issuer recorded at first start, recording `candidate` if none is.
    async fn issuer_or_record(&self, candidate: &str) -> StoreResult<String>;
    /// Records that some server issues tokens living `ttl_seconds`; returns the longest recorded.
    async fn record_token_ttl(&self, ttl_seconds: i64) -> StoreResult<i64>;
    /// The longest token lifetime any server recorded (0 if none).
    async fn longest_token_ttl(&self) -> StoreResult<i64>;

    /// Creates an application.
    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()>;
    /// Finds an application.
    async fn application(&self, id: &str) -> StoreResult<Option<ApplicationRecord>>;

    /// Stores a new key (its application must exist).
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Finds a key by the hash of its secret.
    async fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>>;
    /// Finds a key by id.
    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Lists keys, optionally of one environment, oldest first.
    async fn list_api_keys(
        &self,
        environment: Option<Environment>,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes a key. When it was its application's last usable key, the
    /// application's sessions are revoked too. Returns the updated key.
    async fn revoke_api_key(
        &self,
        id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Rotates a key: stores `successor` and ends the old key's life at
    /// `grace_until`. Fails with `Conflict` if the key was already rotated or is not usable.
    async fn rotate_api_key(
        &self,
        id: &str,
        successor: &ApiKeyRecord,
        grace_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Records last-use times (a batch from the usage writer).
    async fn record_api_key_use(&self, uses: &[(String, DateTime<Utc>)]) -> StoreResult<()>;
    /// Changes a key's name or limits and announces it. Returns the updated key.
    async fn update_api_key(
        &self,
        id: &str,
        update: &ApiKeyUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Adds requests to the keys' quota counters (one transaction) and
    /// returns each counter's new total, summed over every server.
    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<Vec<(QuotaDelta, u64)>>;
    /// Deletes quota counters of periods that started before `before`.
    async fn prune_quota_usage(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// The failure counters and known-address record for one login attempt.
    async fn login_throttle_state(
        &self,
        account: &str,
        address: &str,
    ) -> StoreResult<ThrottleState>;
    /// Counts a failed login against its pair, its address and its account
    /// (one transaction; counters older than the window restart at one).
    async fn record_login_failure(&self, failure: &LoginFailure) -> StoreResult<()>;
    /// A successful login: clears the pair's counter and remembers the address.
    async fn record_login_success(
        &self,
        account: &str,
        address: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The stored failure counters, of one account (with its pairs) or all,
    /// latest failure first.
    async fn login_throttles(&self, account: Option<&str>) -> StoreResult<Vec<ThrottleEntry>>;
    /// Clears an account's counters (its own and its pairs'); returns how many.
    async fn clear_login_throttle(&self, account: &str) -> StoreResult<u64>;
    /// Deletes failure counters last bumped before `failures_before` and known
    /// addresses last seen before `known_before` (housekeeping).
    async fn prune_login_throttle(
        &self,
        failures_before: DateTime<Utc>,
        known_before: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Creates a user; `Conflict` if the email is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Finds a user by normalised email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Lists users, oldest first.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Replaces a password hash and revokes all the user's sessions.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces a password hash after a successful login with outdated parameters
    /// (sessions are kept).
    async fn upgrade_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()>;
    /// Disables or enables a user; disabling revokes all the user's sessions.
    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Stores a new session with its first refresh token.
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;
    /// Spends a refresh token atomically (exactly once, even under concurrency).
    async fn spend_refresh_token(&self, spend: &SpendRefreshToken) -> StoreResult<RefreshOutcome>;
    /// Revokes a session (logout). Returns false if it was already revoked or unknown.
    async fn revoke_session(&self, session_id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Revoked sessions whose access tokens have not all expired at `now`.
    async fn revoked_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<RevokedSession>>;

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

    /// The id of the newest change (0 if none).
    async fn latest_change_id(&self) -> StoreResult<i64>;
    /// Changes after `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<ChangeRecord>>;
    /// Deletes changes older than `before` (housekeeping).
    async fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// All durable state, in export order: settings, applications, API keys,
    /// users, signing keys, sessions, refresh tokens; each kind oldest first.
    /// Read from one consistent snapshot. The change feed is not exported.
    async fn export_records(&self) -> StoreResult<Vec<ExportRecord>>;
    /// Writes exported records into this store in one transaction (in
    /// [`crate::export::import_order`], whatever their order in `records`).
    /// Fails with `Conflict(`[`DATABASE_NOT_EMPTY`]`)`, writing nothing, if
    /// any application, API key, user, session or signing key exists; settings
    /// are upserted. Appends nothing to the change feed: servers started
    /// afterwards load everything from storage.
    async fn import_records(&self, records: &[ExportRecord]) -> StoreResult<()>;

    /// Waits until the change feed may have new entries, or `timeout` passes.
    /// Backends that cannot push notifications just wait (the follower then polls).
    async fn wait_for_changes(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_at_rest() {
        let now = chrono::Utc::now();
        let user = UserRecord {
            id: "usr_1".into(),
            email: "a@example.com".into(),
            password_hash: "$argon2id$v=19$secret-hash".into(),
            admin: false,
            disabled: false,
            created_at: now,
        };
        assert!(!format!("{user:?}").contains("secret-hash"));
        let key = SigningKeyRecord {
            kid: "sig_1".into(),
            algorithm: "EdDSA".into(),
            sealed_private_key: "plain:c2VjcmV0LWtleQ==".into(),
            public_key: vec![1, 2, 3],
            created_at: now,
            retired_at: None,
            retires_at: None,
        };
        assert!(!format!("{key:?}").contains("c2VjcmV0LWtleQ"));
    }
}
