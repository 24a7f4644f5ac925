//! The authentication service: the verify path, login, refresh and logout, and
//! the in-memory state that keeps the verify path free of storage I/O.
//!
//! In memory, per server:
//! - a bounded cache of API key records by key hash (negative entries too),
//!   filled on first sight and dropped when the change feed names the key;
//! - a bounded cache of verified token claims by token hash, so a signature is
//!   checked once per token, while expiry is checked on every use;
//! - the set of revoked sessions whose tokens have not yet expired;
//! - the set of disabled keys, whose sessions' tokens are refused;
//! - the signing key ring;
//! - last-use times of keys, written to storage in batches.
//!
//! [`AuthService::apply_changes`] follows the storage change feed; the server
//! calls it several times a second so revocations reach every server within one second.

mod console;
mod monitor;
mod quota;
mod refused_issuers;
mod sessions;
mod verify;

pub use crate::scopes::EffectiveScopes;
pub use console::{ConsoleSignIn, ConsoleTimeouts};
pub use sessions::IssuedTokens;
pub use verify::{CachedKey, Verified};

use crate::admin::{Actor, Admin};
use crate::alerts::{AlertSettings, Alerts};
use crate::hashing::{HashingPool, HashingPoolSettings};
use crate::ids::{KeyId, SessionId, SigningKeyId};
use crate::password::PasswordHasher;
use crate::sealer::KeySealer;
use crate::shared_limits::SharedLimits;
use crate::store::{Change, SigningKeyRecord, Store};
use crate::throttle::ThrottleSettings;
use crate::token::{generate_signing_key, AccessClaims, KeyRing, TokenExpectations};
use crate::usage::UsageRecorder;
use crate::{Clock, Environment, SecretHash, ServiceError};
use chrono::{DateTime, Duration, Utc};
use quick_cache::sync::Cache;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Settings of the authentication service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The server's environment.
    pub environment: Environment,
    /// The issuer written into and required of tokens.
    pub issuer: String,
    /// The audience written into and required of tokens.
    pub audience: String,
    /// Access token lifetime.
    pub token_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Most API keys kept in memory.
    pub key_cache_capacity: usize,
    /// Most verified tokens kept in memory.
    pub token_cache_capacity: usize,
    /// Size of the password hashing pool.
    pub hashing: HashingPoolSettings,
    /// Login throttle limits.
    pub throttle: ThrottleSettings,
    /// How long protected requests are still checked from memory after the
    /// change feed was last read; beyond, they fail closed (storage unavailable).
    pub max_staleness: std::time::Duration,
    /// Alert rules and webhooks.
    pub alerts: AlertSettings,
    /// Whether usage per key is counted (`keys usage`, usage-based alerts).
    pub usage_tracking: bool,
    /// How much storage reading API keys not in memory may cost.
    pub key_lookups: KeyLookupSettings,
}

/// Bounds on the storage reads that API keys not yet in memory cause. Any
/// client can make up keys with a valid checksum; each costs a read once,
/// so without a bound a flood of them could occupy the storage pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLookupSettings {
    /// Reads of keys not in memory running at once on this server.
    pub concurrent: usize,
    /// How long a read waits for its turn before the request is answered
    /// 503 `overloaded`.
    pub wait: std::time::Duration,
    /// Reads one client network (an IPv4 address, an IPv6 /64) may cause;
    /// beyond, 429 `rate_limited`. Keys already in memory are not counted.
    pub per_client: crate::limits::RateLimit,
}

impl Default for KeyLookupSettings {
    fn default() -> Self {
        KeyLookupSettings {
            concurrent: 4,
            wait: std::time::Duration::from_millis(250),
            per_client: crate::limits::RateLimit {
                requests: 100,
                unit: crate::limits::RateUnit::Second,
                burst: 1000,
            },
        }
    }
}

/// Client networks whose key-lookup budgets are remembered (the least
/// recently used are forgotten first; a forgotten one starts a full budget).
const LOOKUP_BUDGETS: usize = 65_536;

/// Hits and misses of the API key and token caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// API keys found in memory.
    pub key_hits: u64,
    /// API keys read from storage.
    pub key_misses: u64,
    /// Tokens whose verified claims were in memory.
    pub token_hits: u64,
    /// Tokens verified (signature checked).
    pub token_misses: u64,
}

/// The authentication service shared by every request handler.
pub struct AuthService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: ServiceSettings,
    expectations: TokenExpectations,
    sealer: KeySealer,
    key_ring: RwLock<Arc<KeyRing>>,
    keys: Cache<SecretHash, Option<Arc<CachedKey>>>,
    key_lookups: Arc<tokio::sync::Semaphore>,
    lookup_budgets: Cache<String, Arc<crate::limits::RateGate>>,
    lookups_refused: AtomicU64,
    rate_gates: Cache<KeyId, Arc<crate::limits::RateGate>>,
    key_generation: AtomicU64,
    tokens: Cache<SecretHash, Arc<AccessClaims>>,
    revoked_sessions: RwLock<HashMap<SessionId, DateTime<Utc>>>,
    refused_issuers: refused_issuers::RefusedIssuers,
    pending_uses: Mutex<HashMap<KeyId, DateTime<Utc>>>,
    quotas: quota::QuotaCounters,
    last_change_id: AtomicI64,
    last_change_applied_at: AtomicI64,
    last_feed_contact: Mutex<Instant>,
    storage_reads: AtomicU64,
    hashing: HashingPool,
    hasher: PasswordHasher,
    alerts: Alerts,
    usage: UsageRecorder,
    monitor: monitor::MonitorState,
    /// Decides rate limits and quotas with every other server, when set.
    shared_limits: Option<Arc<dyn SharedLimits>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuthService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Starts the service on `store`: records the token lifetime, makes sure a
    /// signing key exists, and loads revocations, disabled keys and signing keys.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: ServiceSettings,
        sealer: KeySealer,
        hasher: PasswordHasher,
    ) -> Result<Self, ServiceError> {
        let last_change_id = store.latest_change_id().await?;
        store
            .record_token_ttl(settings.token_ttl.num_seconds())
            .await?;
        ensure_signing_key(store.as_ref(), clock.as_ref(), &sealer).await?;
        let now = clock.now();
        let revoked = store
            .revoked_sessions(now)
            .await?
            .into_iter()
            .map(|revoked| (revoked.session_id, revoked.until))
            .collect();
        let disabled_keys: HashSet<KeyId> = store.disabled_api_keys().await?.into_iter().collect();
        let expectations = TokenExpectations {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            environment: settings.environment,
        };
        let service = AuthService {
            keys: Cache::new(settings.key_cache_capacity.max(16)),
            key_lookups: Arc::new(tokio::sync::Semaphore::new(
                settings.key_lookups.concurrent.max(1),
            )),
            lookup_budgets: Cache::new(LOOKUP_BUDGETS),
            lookups_refused: AtomicU64::new(0),
            rate_gates: Cache::new(settings.key_cache_capacity.max(16)),
            tokens: Cache::new(settings.token_cache_capacity.max(16)),
            hashing: HashingPool::new(settings.hashing),
            store,
            clock,
            expectations,
            sealer,
            key_ring: RwLock::new(Arc::new(KeyRing::empty())),
            key_generation: AtomicU64::new(0),
            revoked_sessions: RwLock::new(revoked),
            refused_issuers: refused_issuers::RefusedIssuers::new(disabled_keys),
            pending_uses: Mutex::new(HashMap::new()),
            quotas: quota::QuotaCounters::default(),
            last_change_id: AtomicI64::new(last_change_id),
            last_change_applied_at: AtomicI64::new(now.timestamp_millis()),
            last_feed_contact: Mutex::new(Instant::now()),
            storage_reads: AtomicU64::new(0),
            hasher,
            alerts: Alerts::new(settings.alerts.clone()),
            usage: UsageRecorder::default(),
            monitor: monitor::MonitorState::default(),
            settings,
            shared_limits: None,
        };
        service.reload_key_ring().await?;
        Ok(service)
    }

    /// Decides rate limits and quotas with `shared` (every server at once)
    /// instead of on this server alone, except for requests `shared` cannot
    /// answer.
    pub fn with_shared_limits(mut self, shared: Arc<dyn SharedLimits>) -> Self {
        self.shared_limits = Some(shared);
        self
    }

    /// The shared limits store, if any.
    pub fn shared_limits(&self) -> Option<&Arc<dyn SharedLimits>> {
        self.shared_limits.as_ref()
    }

    /// The settings in force.
    pub fn settings(&self) -> &ServiceSettings {
        &self.settings
    }

    /// The storage behind the service.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Alert raising.
    pub fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// Support staff's operations on this service's storage, recorded in the
    /// audit log as done by `actor`.
    pub fn admin(&self, actor: Actor) -> Admin {
        Admin::new(
            self.store.clone(),
            self.clock.clone(),
            self.hasher.clone(),
            self.sealer.clone(),
        )
        .with_actor(actor)
        .with_webhook_targets(self.alerts.settings().owner_webhook_targets)
    }

    /// The sealer of private keys and webhook secrets.
    pub fn sealer(&self) -> &KeySealer {
        &self.sealer
    }

    /// The service's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current signing key ring.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        match self.key_ring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Storage reads made by the verify path so far (API key cache misses).
    pub fn verify_storage_reads(&self) -> u64 {
        self.storage_reads.load(Ordering::Relaxed)
    }

    /// Requests refused so far because reading their (unknown) key would
    /// have gone over a lookup bound ([`KeyLookupSettings`]).
    pub fn key_lookups_refused(&self) -> u64 {
        self.lookups_refused.load(Ordering::Relaxed)
    }

    /// The id of the last change-feed entry this server has applied.
    pub fn applied_change_id(&self) -> i64 {
        self.last_change_id.load(Ordering::SeqCst)
    }

    /// When the change feed was last followed successfully.
    pub fn last_change_applied_at(&self) -> DateTime<Utc> {
        crate::clock::from_millis(self.last_change_applied_at.load(Ordering::SeqCst))
    }

    /// Whether the in-memory state may be used: the change feed was read
    /// within `max_staleness` (measured on the monotonic clock).
    pub fn is_fresh(&self) -> bool {
        match self.last_feed_contact.lock() {
            Ok(contact) => contact.elapsed() <= self.settings.max_staleness,
            Err(_) => false,
        }
    }

    /// Hashing jobs running or waiting.
    pub fn hashing_in_flight(&self) -> usize {
        self.hashing.in_flight()
    }

    /// Hashing jobs waiting for a worker.
    pub fn hashing_queued(&self) -> usize {
        self.hashing.queued()
    }

    /// Logins refused so far because the hashing queue was full.
    pub fn hashing_rejected(&self) -> u64 {
        self.hashing.rejected()
    }

    /// Hits and misses of the in-memory caches so far.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            key_hits: self.keys.hits(),
            key_misses: self.keys.misses(),
            token_hits: self.tokens.hits(),
            token_misses: self.tokens.misses(),
        }
    }

    /// Reads the signing keys and builds the key ring. A storage error is
    /// returned (the caller tries again). A ring that cannot be built from
    /// what was read (a key sealed under a key-encryption key this server
    /// does not have) fails the start, but on a running server it only keeps
    /// the current ring and says so: the change feed must go on, or this
    /// server would stop learning about revocations and fail closed.
    async fn reload_key_ring(&self) -> Result<(), ServiceError> {
        let records = self.store.signing_keys().await?;
        let ring = match KeyRing::from_records(&records, &self.sealer, self.clock.now()) {
            Ok(ring) => ring,
            Err(error) if !self.key_ring().is_empty() => {
                tracing::error!(
                    %error,
                    "the signing keys changed but cannot be opened here; keeping the current \
                     keys (tokens signed with the new key are refused by this server): give it \
                     the key-encryption key the other servers use, and restart it"
                );
                return Ok(());
            }
            Err(error) => return Err(ServiceError::Internal(error.to_string())),
        };
        let previous = self.key_ring();
        let removed = previous
            .published()
            .iter()
            .any(|(kid, _)| !ring.verifies(kid));
        match self.key_ring.write() {
            Ok(mut current) => *current = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        if removed {
            // Cached verdicts do not say which key signed them: drop them all
            // once a key left the ring (revoked, or its tokens expired), so
            // none signed by a removed key passes again. Verdicts cached by a
            // verification that raced this reload are dropped by it.
            self.tokens.clear();
        }
        Ok(())
    }

    /// Applies new entries of the storage change feed to the in-memory state.
    /// Returns how many were applied.
    pub async fn apply_changes(&self) -> Result<usize, ServiceError> {
        let mut applied = 0;
        loop {
            let after = self.last_change_id.load(Ordering::SeqCst);
            let changes = self.store.changes_since(after, 1000).await?;
            if changes.is_empty() {
                break;
            }
            // A hole before the first change read (ids may also skip on
            // PostgreSQL): were changes after `after` pruned unread?
            if changes[0].id > after + 1 {
                let pruned_through = self.store.changes_pruned_through().await?;
                if pruned_through > after {
                    self.resync_after_gap(after, pruned_through).await?;
                    continue;
                }
            }
            let mut reload_ring = false;
            for record in &changes {
                match &record.change {
                    Change::ApiKey { key_hash } => {
                        self.key_generation.fetch_add(1, Ordering::SeqCst);
                        self.keys.remove(key_hash);
                    }
                    Change::SessionRevoked { session_id, until } => {
                        self.mark_session_revoked(session_id, *until);
                    }
                    Change::SigningKeys => reload_ring = true,
                    Change::KeyDisabled { key_id, disabled } => {
                        self.refused_issuers.set_disabled(key_id, *disabled);
                    }
                }
            }
            if reload_ring {
                // On failure the position is kept, so the batch is applied again
                // (every change is idempotent) and the ring reload retried.
                self.reload_key_ring().await?;
            }
            if let Some(last) = changes.last() {
                self.last_change_id.store(last.id, Ordering::SeqCst);
            }
            applied += changes.len();
        }
        self.last_change_applied_at
            .store(self.clock.now().timestamp_millis(), Ordering::SeqCst);
        if let Ok(mut contact) = self.last_feed_contact.lock() {
            *contact = Instant::now();
        }
        Ok(applied)
    }

    /// This server missed changes that were pruned before it read them (it
    /// was cut off from storage for longer than the feed's retention): drops
    /// every cached key and token verdict, reloads the revoked sessions, the
    /// disabled keys and the key ring, and follows the feed from its current end.
    async fn resync_after_gap(
        &self,
        last_seen: i64,
        pruned_through: i64,
    ) -> Result<(), ServiceError> {
        tracing::warn!(
            last_seen,
            pruned_through,
            "this server fell behind the change feed (changes it had not read were pruned): \
             dropping every cached key, token and session state and reloading it"
        );
        let position = self.store.latest_change_id().await?;
        let now = self.clock.now();
        let revoked: HashMap<SessionId, DateTime<Utc>> = self
            .store
            .revoked_sessions(now)
            .await?
            .into_iter()
            .map(|revoked| (revoked.session_id, revoked.until))
            .collect();
        let disabled: HashSet<KeyId> = self.store.disabled_api_keys().await?.into_iter().collect();
        // Before the generation moves: a key read that began before this
        // replacement then neither stays among the refused issuers nor in
        // the key cache, and one that began after it keeps both.
        self.refused_issuers.replace(disabled);
        self.key_generation.fetch_add(1, Ordering::SeqCst);
        self.keys.clear();
        self.tokens.clear();
        match self.revoked_sessions.write() {
            Ok(mut current) => *current = revoked,
            Err(poisoned) => *poisoned.into_inner() = revoked,
        }
        self.reload_key_ring().await?;
        self.last_change_id.store(position, Ordering::SeqCst);
        Ok(())
    }

    /// Drops revoked sessions whose tokens have all expired, stale signing
    /// keys, and ended console sessions.
    pub async fn housekeeping(&self) -> Result<(), ServiceError> {
        let now = self.clock.now();
        if let Ok(mut revoked) = self.revoked_sessions.write() {
            revoked.retain(|_, until| *until > now);
        }
        self.refused_issuers.prune(now);
        self.reload_key_ring().await?;
        self.store.prune_changes(now - Duration::days(1)).await?;
        let throttle = &self.settings.throttle;
        self.store
            .prune_login_throttle(now - throttle.window, now - throttle.known_address_for)
            .await?;
        // Month quotas need the previous month's counter at most.
        self.store
            .prune_quota_usage(now - Duration::days(40))
            .await?;
        self.quotas.forget_ended(now);
        self.store.prune_key_usage(now).await?;
        self.check_expiring_keys(now).await?;
        // Console sessions are kept a day past their end (sign-outs are
        // still readable as ended), then deleted.
        self.store
            .prune_console_sessions(now - Duration::days(1))
            .await?;
        Ok(())
    }

    fn mark_session_revoked(&self, session_id: &SessionId, until: DateTime<Utc>) {
        if let Ok(mut revoked) = self.revoked_sessions.write() {
            let entry = revoked.entry(session_id.clone()).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    /// Writes buffered usage, last-use times and quota counts to storage.
    pub async fn flush_usage(&self) -> Result<usize, ServiceError> {
        let usage = if self.settings.usage_tracking {
            self.flush_key_usage().await
        } else {
            Ok(())
        };
        let deltas = self.quotas.drain();
        if !deltas.is_empty() {
            match self.store.add_quota_usage(&deltas).await {
                Ok(totals) => self.quotas.settle(&totals),
                Err(error) => {
                    self.quotas.restore(deltas);
                    return Err(error.into());
                }
            }
        }
        let written = self.flush_last_uses().await?;
        usage.map(|()| written)
    }

    async fn flush_last_uses(&self) -> Result<usize, ServiceError> {
        let pending = match self.pending_uses.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Ok(0),
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let uses: Vec<(KeyId, DateTime<Utc>)> = pending.into_iter().collect();
        if let Err(error) = self.store.record_api_key_use(&uses).await {
            // Keep the newest times for the next flush.
            if let Ok(mut pending) = self.pending_uses.lock() {
                for (key_id, used_at) in uses {
                    let entry = pending.entry(key_id).or_insert(used_at);
                    *entry = (*entry).max(used_at);
                }
            }
            return Err(error.into());
        }
        Ok(uses.len())
    }
}

/// Makes sure an active signing key exists, creating the first one if needed.
pub async fn ensure_signing_key(
    store: &dyn Store,
    clock: &dyn Clock,
    sealer: &KeySealer,
) -> Result<(), ServiceError> {
    let records = store.signing_keys().await?;
    if records.iter().any(|record| record.retired_at.is_none()) {
        // Fail early if the stored keys cannot be opened with this configuration.
        KeyRing::from_records(&records, sealer, clock.now())
            .map_err(|error| ServiceError::Internal(error.to_string()))?;
        return Ok(());
    }
    let record = new_signing_key_record(clock.now(), sealer)?;
    store.insert_first_signing_key(&record).await?;
    Ok(())
}

/// Generates and seals a new signing key.
pub fn new_signing_key_record(
    now: DateTime<Utc>,
    sealer: &KeySealer,
) -> Result<SigningKeyRecord, ServiceError> {
    let generated =
        generate_signing_key().map_err(|error| ServiceError::Internal(error.to_string()))?;
    let kid = SigningKeyId::new();
    let sealed = sealer
        .seal(kid.as_str(), &generated.pkcs8)
        .map_err(|error| ServiceError::Internal(error.to_string()))?;
    Ok(SigningKeyRecord {
        kid,
        algorithm: "EdDSA".to_owned(),
        sealed_private_key: sealed,
        public_key: generated.public_key,
        created_at: now,
        retired_at: None,
        retires_at: None,
    })
}
