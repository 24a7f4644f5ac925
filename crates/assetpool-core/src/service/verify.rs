//! The verify path: API key, then token, in the contract's order. In the
//! common case it touches only memory: a key record from the key cache, a
//! token's claims from the token cache, the revoked-session set.

use super::AuthService;
use crate::api_key::ApiKeySecret;
use crate::limits::RateGate;
use crate::store::{ApiKeyRecord, StoreError};
use crate::token::{AccessClaims, TokenError};
use crate::{ApiKeyStatus, SecretHash, ServiceError};
use assetpool_wire::ErrorCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A key record as held in memory, with the state of its rate limit.
#[derive(Debug)]
pub struct CachedKey {
    /// The stored record.
    pub record: ApiKeyRecord,
    last_reported_second: AtomicI64,
    rate: Option<Arc<RateGate>>,
}

/// A request whose API key and token were both accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The API key.
    pub key: Arc<CachedKey>,
    /// The token's claims.
    pub claims: Arc<AccessClaims>,
}

impl AuthService {
    /// Step 1: checks the `x-api-key` value.
    pub async fn authenticate_key(
        &self,
        presented: Option<&str>,
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
            None => self.load_key(hash).await?,
        };
        let cached = cached.ok_or(ErrorCode::InvalidApiKey)?;
        let now = self.clock.now();
        match cached.record.status(now) {
            ApiKeyStatus::Revoked => return Err(ErrorCode::ApiKeyRevoked.into()),
            ApiKeyStatus::Expired => return Err(ErrorCode::ApiKeyExpired.into()),
            ApiKeyStatus::Active | ApiKeyStatus::Rotating => {}
        }
        if cached.record.environment != self.settings.environment {
            return Err(ErrorCode::WrongEnvironment.into());
        }
        if let Some(gate) = &cached.rate {
            gate.check().map_err(ServiceError::RateLimited)?;
        }
        if let Some(quota) = &cached.record.limits.quota {
            self.quotas
                .take(&cached.record.id, quota, now)
                .map_err(ServiceError::RateLimited)?;
        }
        self.note_use(&cached, now);
        Ok(cached)
    }

    async fn load_key(&self, hash: SecretHash) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        let generation = self.key_generation.load(Ordering::SeqCst);
        self.storage_reads.fetch_add(1, Ordering::Relaxed);
        let loaded = self.store.api_key_by_hash(&hash).await?.map(|record| {
            Arc::new(CachedKey {
                rate: self.rate_gate(&record),
                record,
                last_reported_second: AtomicI64::new(0),
            })
        });
        // A change applied while loading may have made the loaded record stale.
        if self.key_generation.load(Ordering::SeqCst) == generation {
            self.keys.insert(hash, loaded.clone());
        }
        Ok(loaded)
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

    fn note_use(&self, cached: &CachedKey, now: chrono::DateTime<chrono::Utc>) {
        let second = now.timestamp();
        if cached.last_reported_second.swap(second, Ordering::Relaxed) == second {
            return;
        }
        if let Ok(mut pending) = self.pending_uses.lock() {
            pending.insert(cached.record.id.clone(), now);
        }
    }

    /// Step 2: checks the token presented with an accepted key.
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
                let claims = self
                    .key_ring()
                    .verify(token, &self.expectations, now)
                    .map_err(|error| match error {
                        TokenError::Invalid => ErrorCode::InvalidToken,
                        TokenError::Expired => ErrorCode::TokenExpired,
                    })?;
                let claims = Arc::new(claims);
                self.tokens.insert(hash, claims.clone());
                claims
            }
        };
        if self.is_session_revoked(&claims.sid) {
            return Err(ErrorCode::TokenRevoked.into());
        }
        if claims.app != key.application_id {
            return Err(ErrorCode::InvalidToken.into());
        }
        Ok(claims)
    }

    /// Both steps, in the contract's order.
    pub async fn authenticate(
        &self,
        api_key: Option<&str>,
        token: Option<&str>,
    ) -> Result<Verified, ServiceError> {
        let key = self.authenticate_key(api_key).await?;
        let claims = self.authenticate_token(&key.record, token)?;
        Ok(Verified { key, claims })
    }

    pub(super) fn is_session_revoked(&self, session_id: &str) -> bool {
        match self.revoked_sessions.read() {
            Ok(revoked) => revoked.contains_key(session_id),
            // Fail closed.
            Err(_) => true,
        }
    }
}
