//! The server's public keys, fetched from its JWKS and cached.
//!
//! Keys are refetched when the cache is older than its maximum age, and when a
//! token names an unknown `kid` (a signing-key rotation), at most once per
//! refetch interval so that tokens with made-up `kid`s cannot make the backend
//! hammer the server. One fetch at a time: concurrent callers wait for it.
//! After a failed fetch, the stale keys keep serving and no new fetch is tried
//! for [`RETRY_AFTER_FAILURE`], so an unreachable server is not hammered either.

use crate::error::VerifyError;
use crate::verifier::successful;
use assetpool_wire::JwkSet;
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Length of a raw Ed25519 public key (RFC 8037 `x`).
const ED25519_PUBLIC_KEY_BYTES: usize = 32;

/// Pause after a failed fetch before the next attempt.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// When fetches happened; the mutex around it also serialises fetches.
#[derive(Default)]
struct FetchLog {
    /// When an unknown `kid` last caused a fetch.
    unknown_kid: Option<Instant>,
    /// When the last fetch failed.
    failure: Option<Instant>,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// A cached JWKS.
pub(crate) struct JwksCache {
    url: String,
    max_age: Duration,
    refetch_interval: Duration,
    keys: RwLock<KeySet>,
    fetch_log: Mutex<FetchLog>,
    fetches: AtomicU64,
}

impl JwksCache {
    pub(crate) fn new(url: String, max_age: Duration, refetch_interval: Duration) -> Self {
        JwksCache {
            url,
            max_age,
            refetch_interval,
            keys: RwLock::new(KeySet::default()),
            fetch_log: Mutex::new(FetchLog::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the JWKS was fetched.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn is_fresh(&self, set: &KeySet) -> bool {
        set.fetched_at
            .is_some_and(|fetched_at| fetched_at.elapsed() < self.max_age)
    }

    /// The key `kid`, fetching the JWKS when the cache is stale or (rate
    /// limited) when `kid` is unknown.
    pub(crate) async fn key(
        &self,
        http: &reqwest::Client,
        kid: &str,
    ) -> Result<DecodingKey, VerifyError> {
        {
            let set = self.keys.read().await;
            if self.is_fresh(&set) {
                if let Some(key) = set.keys.get(kid) {
                    return Ok(key.clone());
                }
            }
        }
        let mut log = self.fetch_log.lock().await;
        // Another caller may have fetched while this one waited.
        let (fresh, known) = {
            let set = self.keys.read().await;
            if self.is_fresh(&set) {
                if let Some(key) = set.keys.get(kid) {
                    return Ok(key.clone());
                }
            }
            (self.is_fresh(&set), set.keys.get(kid).cloned())
        };
        let may_refetch = log
            .unknown_kid
            .is_none_or(|fetched_at| fetched_at.elapsed() >= self.refetch_interval);
        let recently_failed = log
            .failure
            .is_some_and(|failed_at| failed_at.elapsed() < RETRY_AFTER_FAILURE);
        if recently_failed {
            // A stale copy of a key still verifies; an unknown one cannot.
            return known.ok_or_else(|| {
                VerifyError::Unavailable("JWKS: the last fetch failed; retrying shortly".into())
            });
        }
        if !fresh || may_refetch {
            if fresh {
                log.unknown_kid = Some(Instant::now());
            }
            if let Err(error) = self.fetch(http).await {
                log.failure = Some(Instant::now());
                return known.ok_or(error);
            }
            log.failure = None;
        }
        let set = self.keys.read().await;
        set.keys.get(kid).cloned().ok_or(VerifyError::Invalid)
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(), VerifyError> {
        let unavailable = |error: reqwest::Error| {
            VerifyError::Unavailable(format!("JWKS: {}", error.without_url()))
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = http.get(&self.url).send().await.map_err(unavailable)?;
        let document: JwkSet = successful(response, "JWKS")?
            .json()
            .await
            .map_err(unavailable)?;
        let keys = document
            .keys
            .iter()
            .filter(|jwk| jwk.kty == "OKP" && jwk.crv == "Ed25519" && jwk.alg == "EdDSA")
            .filter_map(|jwk| {
                DecodingKey::from_ed_components(&jwk.x)
                    .ok()
                    // An Ed25519 public key is 32 bytes; jsonwebtoken's
                    // verifier assumes it and would panic on a shorter one.
                    .filter(|key| key.as_bytes().len() == ED25519_PUBLIC_KEY_BYTES)
                    .map(|key| (jwk.kid.clone(), key))
            })
            .collect();
        let mut set = self.keys.write().await;
        *set = KeySet {
            keys,
            fetched_at: Some(Instant::now()),
        };
        Ok(())
    }
}
