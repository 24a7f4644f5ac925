//! The verify path, in two steps in the contract's order:
//! [`AuthService::authenticate_key`], then [`AuthService::authenticate_token`]
//! with the accepted key (a caller may act on the key in between: the server
//! attaches the key's usage counters to the request). In the common case it
//! touches only memory: a key record from the key cache, a token's claims from
//! the token cache, the revoked-session set.

use super::AuthService;
use crate::alerts::{AlertRule, Trigger};
use crate::api_key::ApiKeySecret;
use crate::limits::{LimitExceeded, RateGate};
use crate::scopes::{EffectiveScopes, ScopeSet};
use crate::shared_limits::LimitRequest;
use crate::store::{ApiKeyRecord, StoreError};
use crate::token::{AccessClaims, TokenError};
use crate::usage::{KeyUsageCell, Outcome};
use crate::{ApiKeyStatus, SecretHash, ServiceError};
use assetpool_wire::ErrorCode;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A key's use is reported for `last_used_at` again once it is this many
/// seconds past the last one reported (the precision of the usage record's
/// last use too: `usage::LAST_USE_PRECISION_MS`).
const LAST_USE_PRECISION_SECONDS: i64 = 60;

/// A key record as held in memory, with the state of its rate limit.
#[derive(Debug)]
pub struct CachedKey {
    /// The stored record.
    pub record: ApiKeyRecord,
    last_reported_second: AtomicI64,
    rate: Option<Arc<RateGate>>,
    usage: Option<Arc<KeyUsageCell>>,
}

impl CachedKey {
    /// The key's usage counters on this server (`None` when usage tracking is off).
    pub fn usage(&self) -> Option<&Arc<KeyUsageCell>> {
        self.usage.as_ref()
    }
}

/// A request whose API key and token were both accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The API key.
    pub key: Arc<CachedKey>,
    /// The token's claims.
    pub claims: Arc<AccessClaims>,
    /// The client address the request came from (`None` when unknown),
    /// checked again against the key's allow-list by re-checks.
    pub client: Option<IpAddr>,
}

impl Verified {
    /// The request's scopes: the token's, within the key's scopes as this
    /// server knows them now (the record in the key cache, refreshed by the
    /// change feed). For an unrestricted key and token it is one match, and
    /// nothing is allocated to read or check it.
    pub fn scopes(&self) -> EffectiveScopes<'_> {
        EffectiveScopes::of(self.claims.scope.as_ref(), self.key.record.scopes.as_ref())
    }
}

impl AuthService {
    /// Step 1: checks the `x-api-key` value of a request from `client`
    /// (`None` when unknown: no per-network lookup budget, no address noted,
    /// and refused by a key with an allow-list). Notes the use (time,
    /// address) and, for a known key refused, counts the refusal and raises
    /// the rule's alert.
    pub async fn authenticate_key(
        &self,
        presented: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Arc<CachedKey>, ServiceError> {
        if !self.is_fresh() {
            // Revocations made since the feed was last read could be missed: fail closed.
            return Err(StoreError::Unavailable(
                "the change feed has not been read within the maximum staleness".into(),
            )
            .into());
        }
        let presented = presented.ok_or(ErrorCode::MissingApiKey)?;
        let secret = ApiKeySecret::parse(presented).map_err(|_| ErrorCode::InvalidApiKey)?;
        let hash = secret.hash();
        let cached = match self.keys.get(&hash) {
            Some(cached) => cached,
            None => self.load_key(hash, client).await?,
        };
        let cached = cached.ok_or(ErrorCode::InvalidApiKey)?;
        let now = self.clock.now();
        if let Some((code, rule)) = self.key_refusal(&cached.record, client, now) {
            self.refuse_known_key(&cached, code, rule, client, now);
            return Err(code.into());
        }
        // A key without limits pays one branch here: no store, no allocation.
        let limits = &cached.record.limits;
        if limits.rate.is_some() || limits.quota.is_some() {
            if let Err(exceeded) = self.take_limits(&cached, now).await {
                if let Some(usage) = &cached.usage {
                    usage.count(Outcome::ClientError(ErrorCode::RateLimited));
                }
                return Err(ServiceError::RateLimited(exceeded));
            }
        }
        match &cached.usage {
            Some(usage) => usage.note_use(now.timestamp_millis(), client),
            None => self.note_use(&cached, now),
        }
        Ok(cached)
    }

    /// Takes one request from the rate and quota of a key that has either:
    /// from the shared limits store when there is one and it answers, from
    /// this server's own gate and counters otherwise.
    async fn take_limits(
        &self,
        cached: &CachedKey,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), LimitExceeded> {
        let record = &cached.record;
        if let Some(shared) = &self.shared_limits {
            let quota = record.limits.quota;
            let (period_start, period_end, quota_floor) = match &quota {
                Some(quota) => (
                    quota.period.start(now),
                    quota.period.next_start(now),
                    self.quotas.known_total(&record.id, quota, now),
                ),
                None => (now, now, 0),
            };
            let request = LimitRequest {
                key_id: &record.id,
                rate: record.limits.rate,
                quota,
                period_start,
                period_end,
                quota_floor,
            };
            if let Some(decision) = shared.take(request).await {
                if let Some(exceeded) = decision.refusal(&request, now) {
                    return Err(exceeded);
                }
                if let Some(quota) = &quota {
                    self.quotas.count(&record.id, quota, now);
                }
                return Ok(());
            }
        }
        match &cached.rate {
            Some(gate) => gate.check(),
            None => Ok(()),
        }
        .and_then(|()| match &record.limits.quota {
            Some(quota) => self.quotas.take(&record.id, quota, now),
            None => Ok(()),
        })
    }

    /// Why a known key is refused to a request from `client` at `now`, in
    /// the contract's order: revoked, expired, disabled, another
    /// environment, then an address outside its allow-list (a key without
    /// one pays one branch). With the alert rule the refusal raises, if any.
    fn key_refusal(
        &self,
        record: &ApiKeyRecord,
        client: Option<IpAddr>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(ErrorCode, Option<AlertRule>)> {
        let by_state = match record.status(now) {
            ApiKeyStatus::Revoked => {
                Some((ErrorCode::ApiKeyRevoked, Some(AlertRule::RevokedKeyUsed)))
            }
            ApiKeyStatus::Expired => {
                Some((ErrorCode::ApiKeyExpired, Some(AlertRule::ExpiredKeyUsed)))
            }
            ApiKeyStatus::Disabled => Some((ErrorCode::ApiKeyDisabled, None)),
            ApiKeyStatus::Active | ApiKeyStatus::Rotating => None,
        };
        by_state
            .or_else(|| {
                (record.environment != self.settings.environment).then_some((
                    ErrorCode::WrongEnvironment,
                    Some(AlertRule::WrongEnvironment),
                ))
            })
            .or_else(|| match &record.allowed_networks {
                Some(allowed) if !allowed.admits(client) => Some((
                    ErrorCode::AddressNotAllowed,
                    Some(AlertRule::AddressNotAllowed),
                )),
                _ => None,
            })
    }

    /// A known key refused for its state: counted, and its rule's alert
    /// raised (a disabled key raises none: support staff disabled it).
    fn refuse_known_key(
        &self,
        cached: &CachedKey,
        code: ErrorCode,
        rule: Option<AlertRule>,
        client: Option<IpAddr>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        if let Some(usage) = &cached.usage {
            usage.count(Outcome::ClientError(code));
        }
        let Some(rule) = rule else {
            return;
        };
        let record = &cached.record;
        let evidence = serde_json::json!({
            "keyPrefix": record.prefix,
            "keyEnvironment": record.environment.as_str(),
            "serverEnvironment": self.settings.environment.as_str(),
            "revokedAt": record.revoked_at,
            "expiresAt": record.expires_at,
            "clientAddress": client.map(|address| address.to_string()),
        });
        self.alerts
            .trigger(Trigger::for_key(rule, &record.id, evidence, now));
    }

    /// Reads a key that is not in memory, within the bounds of
    /// [`super::KeyLookupSettings`]: concurrent requests for one key share one
    /// read (the first reads, the others wait for its answer, at most the
    /// lookup wait), client networks have budgets of reads, and only a few
    /// reads run at once.
    async fn load_key(
        &self,
        hash: SecretHash,
        client: Option<IpAddr>,
    ) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        let wait = self.settings.key_lookups.wait;
        let placeholder =
            match tokio::time::timeout(wait, self.keys.get_value_or_guard_async(&hash)).await {
                Ok(Ok(loaded)) => return Ok(loaded),
                Ok(Err(placeholder)) => placeholder,
                Err(_) => return Err(self.lookup_overloaded()),
            };
        if let Some(client) = client {
            self.spend_lookup_budget(client)?;
        }
        let Ok(Ok(turn)) =
            tokio::time::timeout(wait, Arc::clone(&self.key_lookups).acquire_owned()).await
        else {
            return Err(self.lookup_overloaded());
        };
        let generation = self.key_generation.load(Ordering::SeqCst);
        let releases = self.refused_issuers.releases();
        self.storage_reads.fetch_add(1, Ordering::Relaxed);
        // The read owns its turn: a caller that goes away (a client closing
        // its connection) cannot free the turn while the query still runs.
        let store = Arc::clone(&self.store);
        let now = self.clock.now();
        let read = tokio::spawn(async move {
            let record = store.api_key_by_hash(&hash).await?;
            // What every server counted for its quota so far, before its
            // first request here.
            let quota_total = match record
                .as_ref()
                .and_then(|record| record.limits.quota.map(|quota| (record, quota)))
            {
                Some((record, quota)) => {
                    let period_start = quota.period.start(now);
                    let total = store.quota_usage(&record.id, period_start).await?;
                    Some((quota, period_start, total))
                }
                None => None,
            };
            drop(turn);
            Ok::<_, crate::store::StoreError>((record, quota_total))
        });
        let (record, quota_total) = read
            .await
            .map_err(|error| ServiceError::Internal(format!("key read failed: {error}")))??;
        if let (Some(record), Some((quota, period_start, total))) = (&record, quota_total) {
            self.quotas.learn(&record.id, &quota, period_start, total);
        }
        // The read may be newer than the change feed: a key it finds
        // disabled or revoked is refused from now on, and so are its tokens
        // through the other keys of its application, without waiting for
        // the feed to say so (see `refused_issuers`).
        let keep = match &record {
            Some(record) if record.revoked_at.is_some() => {
                let until = self.revoked_read_kept_until(now);
                self.refused_issuers.revoked_by_read(&record.id, until);
                true
            }
            // A read older than an enable the feed applied meanwhile: its
            // record is not kept either, so the next request reads again.
            Some(record) if record.disabled_at.is_some() => {
                self.refused_issuers.disabled_by_read(&record.id, releases)
            }
            _ => true,
        };
        let loaded = record.map(|record| {
            Arc::new(CachedKey {
                rate: self.rate_gate(&record),
                usage: if self.settings.usage_tracking {
                    self.usage.cell(&record.id)
                } else {
                    None
                },
                record,
                last_reported_second: AtomicI64::new(0),
            })
        });
        // A change applied while loading may have made the loaded record
        // stale: then it is not kept (requests waiting for it read again).
        // A change of this very key applied after the check below removes
        // the placeholder with the cached entry (quick_cache), and the insert
        // then does nothing.
        if keep && self.key_generation.load(Ordering::SeqCst) == generation {
            let _ = placeholder.insert(loaded.clone());
        }
        Ok(loaded)
    }

    /// Until when a key read as revoked at `now` has its tokens refused
    /// here: by then the change feed has revoked the key's sessions on this
    /// server, or the server refuses every request as stale (a minute more
    /// for a feed read that was under way at `now`).
    fn revoked_read_kept_until(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        let staleness = chrono::Duration::from_std(self.settings.max_staleness)
            .unwrap_or(chrono::Duration::MAX);
        staleness
            .checked_add(&chrono::Duration::seconds(60))
            .and_then(|kept| now.checked_add_signed(kept))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    fn lookup_overloaded(&self) -> ServiceError {
        self.lookups_refused.fetch_add(1, Ordering::Relaxed);
        ServiceError::Overloaded {
            retry_after_seconds: crate::hashing::OVERLOADED_RETRY_AFTER_SECONDS,
        }
    }

    /// Takes one key read from the budgets of `client`'s network and of the
    /// wider network around it (an IPv6 /64 and /48, an IPv4 address and its
    /// /24; the wider one allows four times as much), so that a client who
    /// can use many addresses of one network gets no more.
    fn spend_lookup_budget(&self, client: IpAddr) -> Result<(), ServiceError> {
        let narrow = self.settings.key_lookups.per_client;
        let wide = crate::limits::RateLimit {
            requests: narrow.requests.saturating_mul(4),
            burst: narrow.burst.saturating_mul(4),
            ..narrow
        };
        let (narrow_network, wide_network) = match client.to_canonical() {
            IpAddr::V4(address) => {
                let [a, b, c, _] = address.octets();
                (address.to_string(), format!("{a}.{b}.{c}.0/24"))
            }
            address @ IpAddr::V6(_) => (
                crate::throttle::address_key(address, 64),
                crate::throttle::address_key(address, 48),
            ),
        };
        for (network, limit) in [(narrow_network, narrow), (wide_network, wide)] {
            let budget = self
                .lookup_budgets
                .get_or_insert_with(&network, || {
                    Ok::<_, std::convert::Infallible>(Arc::new(RateGate::new(limit)))
                })
                .unwrap_or_else(|never| match never {});
            budget.check().map_err(|exceeded| {
                self.lookups_refused.fetch_add(1, Ordering::Relaxed);
                ServiceError::RateLimited(exceeded)
            })?;
        }
        Ok(())
    }

    /// The key's rate gate: the one already in use while its limit is
    /// unchanged (a key dropped from the cache and loaded again keeps its
    /// bucket), a new one otherwise.
    fn rate_gate(&self, record: &ApiKeyRecord) -> Option<Arc<RateGate>> {
        let Some(limit) = record.limits.rate else {
            self.rate_gates.remove(&record.id);
            return None;
        };
        if let Some(gate) = self.rate_gates.get(&record.id) {
            if gate.limit() == limit {
                return Some(gate);
            }
        }
        let gate = Arc::new(RateGate::new(limit));
        self.rate_gates.insert(record.id.clone(), gate.clone());
        Some(gate)
    }

    /// Notes a use of a key for its `last_used_at` when usage tracking is
    /// off (the usage counters note it otherwise). A key's first use on this
    /// server is reported, later ones once they are a minute past the last
    /// one reported: `last_used_at` is kept to the minute either way, and a
    /// key in steady use costs one row write a minute instead of one every
    /// flush. Between reports a request only reads the atomic.
    fn note_use(&self, cached: &CachedKey, now: chrono::DateTime<chrono::Utc>) {
        let second = now.timestamp();
        let reported = cached.last_reported_second.load(Ordering::Relaxed);
        if reported != 0 && second.saturating_sub(reported) < LAST_USE_PRECISION_SECONDS {
            return;
        }
        // One of several concurrent requests reports the use.
        if cached
            .last_reported_second
            .compare_exchange(reported, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if let Ok(mut pending) = self.pending_uses.lock() {
            pending.insert(cached.record.id.clone(), now);
        }
    }

    /// Step 2: checks the token presented with a key accepted by
    /// [`AuthService::authenticate_key`].
    pub fn authenticate_token(
        &self,
        key: &ApiKeyRecord,
        token: Option<&str>,
    ) -> Result<Arc<AccessClaims>, ServiceError> {
        let token = token.ok_or(ErrorCode::MissingToken)?;
        let hash = SecretHash::of(token);
        let now = self.clock.now();
        let claims = match self.tokens.get(&hash) {
            Some(claims) => {
                if claims.exp <= now.timestamp() {
                    return Err(ErrorCode::TokenExpired.into());
                }
                claims
            }
            None => {
                let ring = self.key_ring();
                let claims = ring
                    .verify(token, &self.expectations, now)
                    .map_err(|error| match error {
                        TokenError::Invalid => ErrorCode::InvalidToken,
                        TokenError::Expired => ErrorCode::TokenExpired,
                    })?;
                let claims = Arc::new(claims);
                self.tokens.insert(hash, claims.clone());
                if !Arc::ptr_eq(&ring, &self.key_ring()) {
                    // The ring was reloaded meanwhile (maybe without this
                    // token's key, after clearing the cache): verify again next time.
                    self.tokens.remove(&hash);
                }
                claims
            }
        };
        if self.is_session_revoked(&claims.sid) || self.is_issuing_key_refused(&claims) {
            return Err(ErrorCode::TokenRevoked.into());
        }
        if claims.app != key.application_id.as_str() {
            return Err(ErrorCode::InvalidToken.into());
        }
        Ok(claims)
    }

    /// Whether the key the token's session was opened through is disabled
    /// (or was read as revoked moments ago: `refused_issuers`). While no key
    /// is disabled this is one branch.
    pub(super) fn is_issuing_key_refused(&self, claims: &AccessClaims) -> bool {
        match claims.key_id.as_deref() {
            Some(key_id) => self.refused_issuers.contains(key_id),
            None => false,
        }
    }

    pub(super) fn is_session_revoked(&self, session_id: &str) -> bool {
        match self.revoked_sessions.read() {
            Ok(revoked) => revoked.contains_key(session_id),
            // Fail closed.
            Err(_) => true,
        }
    }
}

impl AuthService {
    /// What memory alone says of a request accepted earlier as `verified`,
    /// for connections that outlive their request (the reverse proxy's
    /// WebSocket tunnels): `Err` when it would now be refused; `Ok(true)`
    /// when it would still be accepted; `Ok(false)` when nothing in memory
    /// refuses it but its key is not in memory (it changed since, and only a
    /// read of the key can tell: [`AuthService::still_accepted`]).
    ///
    /// In this order: the freshness guard, the token (expiry, revoked
    /// session, disabled issuing key), then the key if it is in memory
    /// (state, environment, allow-list, application, and the scopes
    /// `required` of the request, if any). It touches no storage and counts
    /// nothing, so it may run as often as a caller needs.
    pub fn still_accepted_in_memory(
        &self,
        verified: &Verified,
        required: Option<&ScopeSet>,
    ) -> Result<bool, ServiceError> {
        if !self.is_fresh() {
            return Err(StoreError::Unavailable(
                "the change feed has not been read within the maximum staleness".into(),
            )
            .into());
        }
        let claims = &verified.claims;
        if claims.exp <= self.clock.now().timestamp() {
            return Err(ErrorCode::TokenExpired.into());
        }
        if self.is_session_revoked(&claims.sid) || self.is_issuing_key_refused(claims) {
            return Err(ErrorCode::TokenRevoked.into());
        }
        match self.keys.get(&verified.key.record.key_hash) {
            Some(key) => self
                .key_still_accepted(key, claims, verified.client, required)
                .map(|()| true),
            None => Ok(false),
        }
    }

    /// Whether a request accepted earlier as `verified` would still be
    /// accepted now: [`AuthService::still_accepted_in_memory`], then, when
    /// the key is not in memory, the key read as on the verify path (one
    /// read per key at a time, within the bounds of
    /// [`super::KeyLookupSettings`]: `Overloaded` when the reads are all
    /// busy, a storage error when storage fails; a caller may try again).
    ///
    /// Unlike [`AuthService::authenticate_key`] it counts nothing: no
    /// rate limit or quota is spent, no use noted, no alert raised.
    pub async fn still_accepted(
        &self,
        verified: &Verified,
        required: Option<&ScopeSet>,
    ) -> Result<(), ServiceError> {
        if self.still_accepted_in_memory(verified, required)? {
            return Ok(());
        }
        let key = self.load_key(verified.key.record.key_hash, None).await?;
        self.key_still_accepted(key, &verified.claims, verified.client, required)
    }

    /// The key's part of a re-check: it exists, is neither revoked, expired
    /// nor disabled, belongs to this server's environment, admits `client`,
    /// belongs to the token's application, and (with the token) still has
    /// the scopes `required`.
    fn key_still_accepted(
        &self,
        key: Option<Arc<CachedKey>>,
        claims: &AccessClaims,
        client: Option<IpAddr>,
        required: Option<&ScopeSet>,
    ) -> Result<(), ServiceError> {
        let key = key.ok_or(ErrorCode::InvalidApiKey)?;
        if let Some((code, _)) = self.key_refusal(&key.record, client, self.clock.now()) {
            return Err(code.into());
        }
        if claims.app != key.record.application_id.as_str() {
            return Err(ErrorCode::InvalidToken.into());
        }
        if let Some(required) = required {
            let scopes = EffectiveScopes::of(claims.scope.as_ref(), key.record.scopes.as_ref());
            if !scopes.satisfies(required) {
                return Err(ErrorCode::InsufficientScope.into());
            }
        }
        Ok(())
    }
}
