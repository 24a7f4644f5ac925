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
    /// Attempts admitted and not yet settled (their password being checked).
    pub pending: u32,
    /// The latest attempt admitted.
    pub last_attempt: DateTime<Utc>,
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

/// A login attempt. It is counted as in flight before its password is
/// checked (so that concurrent attempts cannot all pass the throttle, and an
/// attempt whose client went away still counts), then settled: as a failure
/// ([`Store::settle_login_failure`]), or taken back when it succeeds (see
/// [`SessionOpening`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// Normalised account (email), known or not.
    pub account: String,
    /// The client's throttle address: an IPv4 address, or the IPv6 network
    /// the throttle counts by (see [`crate::throttle::address_key`]).
    pub address: String,
    /// The API key the attempt came through (evidence for alerts).
    pub api_key_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Counters whose latest failure is older than this start again from zero.
    pub window_start: DateTime<Utc>,
}

/// The throttle's decision on one attempt, taken from the counters as they
/// were before it: `Some(seconds to wait)` to refuse it. A pure function of
/// core ([`crate::throttle::retry_after`]), called by the store inside the
/// transaction that counts the attempt.
pub type ThrottleDecision<'a> = &'a (dyn Fn(&ThrottleState) -> Option<u64> + Send + Sync);

/// Outcome of [`Store::count_login_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptAdmission {
    /// The attempt is counted; the counters and known-address record as they
    /// were before it.
    Counted(ThrottleState),
    /// The decision refused the attempt; nothing was counted.
    Refused {
        /// Seconds the client is asked to wait.
        retry_after_seconds: u64,
    },
}

/// A login whose password was verified, to be turned into a session.
#[derive(Debug, Clone)]
pub struct SessionOpening {
    /// The session and its first refresh token.
    pub session: NewSession,
    /// The [`UserRecord::password_version`] the password was verified
    /// against. The session opens only if the user's password is still of
    /// this version and the user is not disabled: a password change or a
    /// disable that landed while the password was being checked wins.
    pub password_version: i64,
    /// The attempt counted for this login: taken back (its pair counter is
    /// cleared, the address's and account's no longer count it in flight)
    /// and its address remembered as one the account logged in from.
    pub attempt: LoginAttempt,
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
    /// Counts the user's password changes (a re-hash of the same password
    /// keeps it): a login opens its session only while it is unchanged.
    pub password_version: i64,
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
            .field("password_version", &self.password_version)
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

/// A stored signing key's new sealed form (see [`SealedKeyStore`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ResealedSigningKey {
    /// Key id (`kid`).
    pub kid: String,
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

/// Rewriting the key material of stored signing keys in place, which only the
/// `signing-keys seal` migration does ([`crate::admin::Admin::seal_signing_keys`]).
/// A supertrait of [`Store`]: every backend implements it beside its
/// signing-key SQL, and it is called on a `dyn Store` like any operation.
#[async_trait]
pub trait SealedKeyStore: Send + Sync {
    /// Replaces the sealed private key of each of `keys` in one transaction,
    /// each only if it still holds `previous`. Fails with `Conflict`, writing
    /// nothing, if any key is unknown or changed meanwhile. Appends nothing to
    /// the change feed: the keys themselves do not change.
    async fn reseal_signing_keys(&self, keys: &[ResealedSigningKey]) -> StoreResult<()>;
}

// ---------------------------------------------------------------------------
// Monitoring: key usage, alerts and their webhook outbox, the audit log.
// ---------------------------------------------------------------------------

/// Resolution of a usage series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageResolution {
    /// Per minute (kept 48 hours).
    Minute,
    /// Per hour (kept 90 days).
    Hour,
    /// Per day (kept 2 years).
    Day,
}

impl UsageResolution {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageResolution::Minute => "minute",
            UsageResolution::Hour => "hour",
            UsageResolution::Day => "day",
        }
    }

    /// Parses a stored (or typed) name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minute" => Some(UsageResolution::Minute),
            "hour" => Some(UsageResolution::Hour),
            "day" => Some(UsageResolution::Day),
            _ => None,
        }
    }

    /// Length of one bucket in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            UsageResolution::Minute => 60_000,
            UsageResolution::Hour => 3_600_000,
            UsageResolution::Day => 86_400_000,
        }
    }

    /// Start of the bucket holding `at` (UTC, aligned on the epoch).
    pub fn bucket_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let millis = at.timestamp_millis();
        crate::clock::from_millis(millis - millis.rem_euclid(self.millis()))
    }
}

/// Requests (or login events) of one key in one minute, with one outcome,
/// counted by one server since its last flush.
///
/// Outcomes: `2xx`, `4xx:<error code>` (e.g. `4xx:token_expired`), `5xx`
/// for requests; `login` and `login_failed` for login events (a login is
/// also counted as a request with its HTTP outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// Key id.
    pub key_id: String,
    /// Start of the minute.
    pub minute: DateTime<Utc>,
    /// Outcome name (see above).
    pub outcome: String,
    /// Count to add.
    pub count: u64,
}

/// A client address a key was used from (for distinct addresses per day and
/// the new-network alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSeen {
    /// Key id.
    pub key_id: String,
    /// The client address as text (`203.0.113.7`, `2001:db8::1`).
    pub address: String,
    /// Its network as text: the /24 of an IPv4 address, the /48 of an IPv6
    /// one (`203.0.113.0/24`, `2001:db8::/48`).
    pub network: String,
    /// When (the latest use in the flush).
    pub at: DateTime<Utc>,
}

/// The latest use of a key in a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLastUse {
    /// Key id.
    pub key_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// From which client address, when known.
    pub address: Option<String>,
}

/// One server's usage since its last flush, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// Counts, added to the minute, hour and day buckets of their minute.
    pub counts: Vec<UsageDelta>,
    /// Addresses seen.
    pub addresses: Vec<AddressSeen>,
    /// Latest uses (also updates the key's `last_used_at` when newer).
    pub last_uses: Vec<KeyLastUse>,
}

/// The hour total of one (key, outcome) after a flush added to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourTotal {
    /// Key id.
    pub key_id: String,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Outcome name.
    pub outcome: String,
    /// Total of every server for that hour and outcome.
    pub total: u64,
}

/// A network a key was used from in a flush, with what storage knew of it before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSeen {
    /// The address as recorded.
    pub seen: AddressSeen,
    /// When the key was last used from this network before this flush (`None`: never).
    pub previously_seen: Option<DateTime<Utc>>,
    /// How many other networks the key had been used from before this flush.
    pub other_networks: u64,
}

/// What [`Store::add_key_usage`] learned while writing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageWritten {
    /// New hour totals of every (key, hour, outcome) the batch added to.
    pub hour_totals: Vec<HourTotal>,
    /// Every distinct (key, network) of the batch.
    pub networks: Vec<NetworkSeen>,
}

/// One bucket of a usage series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Outcome name.
    pub outcome: String,
    /// Count (every server).
    pub count: u64,
}

/// A key's usage as support staff see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Non-empty buckets since the asked time, oldest first, then by outcome.
    pub buckets: Vec<UsageBucket>,
    /// Distinct client addresses per day (day start, count), oldest first,
    /// for the days since the asked time (start of its day).
    pub addresses_per_day: Vec<(DateTime<Utc>, u64)>,
    /// Latest recorded use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Client address of the latest recorded use.
    pub last_address: Option<String>,
}

/// A webhook destination for an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Delivery id (`dlv_...`), sent to the receiver so it can drop duplicates.
    pub id: String,
    /// Destination URL.
    pub url: String,
    /// Which secret signs it: `global` (the server's `--alert-webhook-secret`)
    /// or `key:<key id>` (that key's owner webhook secret).
    pub secret_ref: String,
    /// The JSON body, fixed at creation so every attempt sends the same bytes.
    pub payload: String,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// Id to use if a new alert is created (`alr_...`).
    pub id: String,
    /// Rule name (e.g. `revoked_key_used`).
    pub rule: String,
    /// What the episode is about, e.g. `key:<id>` or `account:<email>`; one
    /// open alert per (rule, subject).
    pub subject: String,
    /// The key concerned, if any.
    pub api_key_id: Option<String>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Evidence as a JSON object (text).
    pub evidence: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// An unacknowledged alert of the same rule and subject last seen at or
    /// after this time is updated instead of a new one being created.
    pub episode_since: DateTime<Utc>,
    /// Webhook deliveries to queue, only if a new alert is created.
    pub deliveries: Vec<NewDelivery>,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Order of creation (for pagination), increasing.
    pub seq: i64,
    /// Alert id (`alr_...`).
    pub id: String,
    /// Rule name.
    pub rule: String,
    /// Subject of the episode.
    pub subject: String,
    /// The key concerned, if any.
    pub api_key_id: Option<String>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Evidence of the latest trigger, a JSON object (text).
    pub evidence: String,
    /// First trigger.
    pub first_seen: DateTime<Utc>,
    /// Latest trigger.
    pub last_seen: DateTime<Utc>,
    /// Triggers in this episode.
    pub occurrences: u64,
    /// When acknowledged.
    pub acked_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
}

/// Result of [`Store::raise_alert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedAlert {
    /// The alert as stored now.
    pub alert: AlertRecord,
    /// True if a new alert (and its deliveries) was created; false if an
    /// open episode was updated.
    pub created: bool,
}

/// A page request: newest first, strictly before `before` (a `seq`), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only records with a smaller `seq`.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A queued webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Delivery id.
    pub id: String,
    /// The alert it carries.
    pub alert_id: String,
    /// Destination URL.
    pub url: String,
    /// Which secret signs it (see [`NewDelivery::secret_ref`]).
    pub secret_ref: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts made so far (including the one being claimed).
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// A per-key owner webhook. `Debug` leaves out the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyWebhook {
    /// Destination URL.
    pub url: String,
    /// The signing secret, sealed (see [`crate::KeySealer`]).
    pub sealed_secret: String,
}

impl std::fmt::Debug for KeyWebhook {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyWebhook")
            .field("url", &self.url)
            .field("sealed_secret", &"[redacted]")
            .finish()
    }
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `cli:<os user>` or `admin:<email>`.
    pub actor: String,
    /// The admin user's id when the actor is one.
    pub actor_id: Option<String>,
    /// What, e.g. `key.revoke`, `user.disable`, `alert.ack`.
    pub action: String,
    /// On what: a key id, an email, a `kid`, an alert id.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code of a failure.
    pub error: Option<String>,
    /// Details as a JSON object (text), never a secret.
    pub detail: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, increasing.
    pub seq: i64,
    /// The entry.
    pub entry: NewAuditEntry,
}

/// Durable state of assetpool. Implemented once per backend.
#[async_trait]
pub trait Store: SealedKeyStore + Send + Sync + 'static {
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
    /// Keys neither revoked nor rotated whose expiry is after `after` and at
    /// or before `until`, soonest first (the expiry warnings).
    async fn api_keys_expiring(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
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

    /// Counts a login attempt in flight against its pair, its address and
    /// its account, unless `decide` (given the counters as they were, with
    /// the known-address record) refuses it. Atomic: concurrent attempts are
    /// decided one after the other, each seeing those counted before it. An
    /// attempt refused by the counters as they stand is refused without
    /// waiting for the others.
    async fn count_login_attempt(
        &self,
        attempt: &LoginAttempt,
        decide: ThrottleDecision<'_>,
    ) -> StoreResult<AttemptAdmission>;
    /// Settles a counted attempt as a failure: one more failure for its
    /// pair, address and account (counters older than the attempt's window
    /// restart at one), one fewer in flight.
    async fn settle_login_failure(&self, attempt: &LoginAttempt) -> StoreResult<()>;
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
    /// Replaces a password hash, advances the password version and revokes
    /// all the user's sessions.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces a password hash after a successful login with outdated
    /// parameters (sessions are kept), only if the password is still of
    /// `password_version` (a re-hash never writes an old password back over
    /// a new one). Returns whether it was replaced.
    async fn upgrade_password_hash(
        &self,
        user_id: &str,
        password_version: i64,
        new_hash: &str,
    ) -> StoreResult<bool>;
    /// Disables or enables a user; disabling revokes all the user's sessions.
    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Opens the session of a successful login, in one transaction: checks
    /// that the user's password is still of the verified version, the user
    /// is enabled and the login's key is not revoked; stores the session with
    /// its first refresh token, and takes the login attempt back. Returns
    /// false (and writes nothing) if the user or the key changed meanwhile.
    async fn open_session(&self, opening: &SessionOpening) -> StoreResult<bool>;
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

    /// Writes one server's usage batch in one transaction: adds each count to
    /// its minute, hour and day buckets, records addresses (per day) and
    /// networks (latest use), and newer last uses. Returns the new hour totals
    /// of what it added to and what it knew of each network before.
    async fn add_key_usage(&self, batch: &UsageBatch) -> StoreResult<UsageWritten>;
    /// A key's usage buckets of `resolution` starting at or after `since`.
    async fn key_usage(
        &self,
        key_id: &str,
        resolution: UsageResolution,
        since: DateTime<Utc>,
    ) -> StoreResult<KeyUsage>;
    /// Deletes minute buckets older than 48 h, hour buckets older than 90
    /// days, day buckets and per-day addresses older than 2 years, networks
    /// last seen more than 90 days before `now`. Returns rows deleted.
    async fn prune_key_usage(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Raises an alert: updates the open episode of the same rule and subject
    /// (unacknowledged, last seen at or after `episode_since`: occurrences + 1,
    /// last seen, evidence) or creates a new alert with its deliveries, in one
    /// transaction (concurrent raises of one episode create one alert).
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<RaisedAlert>;
    /// Alerts last seen at or after `since` (all if `None`), newest first (by `seq`).
    async fn list_alerts(
        &self,
        since: Option<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>>;
    /// Finds an alert by id.
    async fn alert(&self, id: &str) -> StoreResult<Option<AlertRecord>>;
    /// Acknowledges an alert (`NotFound` if unknown; acknowledging twice keeps the first).
    async fn ack_alert(&self, id: &str, by: &str, now: DateTime<Utc>) -> StoreResult<AlertRecord>;

    /// Claims up to `limit` deliveries due at `now` (not delivered, not given
    /// up, next attempt at or before `now`): sets their next attempt to
    /// `lease_until` and counts an attempt, so no other server takes them
    /// meanwhile. Oldest first.
    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Marks a delivery delivered.
    async fn complete_webhook_delivery(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    async fn fail_webhook_delivery(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    /// Deliveries neither delivered nor given up.
    async fn webhook_backlog(&self) -> StoreResult<u64>;
    /// Sets (or with `None` removes) a key's owner webhook.
    async fn set_key_webhook(&self, key_id: &str, webhook: Option<&KeyWebhook>) -> StoreResult<()>;
    /// A key's owner webhook.
    async fn key_webhook(&self, key_id: &str) -> StoreResult<Option<KeyWebhook>>;

    /// Appends to the audit log (there is no way to change or delete an entry).
    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64>;
    /// Audit entries, newest first.
    async fn list_audit(&self, page: Page) -> StoreResult<Vec<AuditRecord>>;

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
            password_version: 0,
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
