//! Optional revocation check through the server's RFC 7662 introspection
//! endpoint, its answers kept in a bounded cache with a time to live.

use crate::error::VerifyError;
use crate::verifier::successful;
use assetpool_wire::{IntrospectionResponse, API_KEY_HEADER};
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Answers kept by default.
pub(crate) const DEFAULT_CAPACITY: u64 = 10_000;

/// One cached answer: whether the token was active, and until when the
/// answer may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answer {
    active: bool,
    until: Instant,
}

/// Introspection answers by token: at most `capacity` of them (quick_cache's
/// eviction drops the least useful first), each used for at most the time to
/// live and never past its token's own expiry.
pub(crate) struct AnswerCache {
    ttl: Duration,
    answers: quick_cache::sync::Cache<String, Answer>,
}

impl AnswerCache {
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        AnswerCache {
            ttl,
            answers: quick_cache::sync::Cache::new(
                usize::try_from(capacity.max(1)).unwrap_or(usize::MAX),
            ),
        }
    }

    /// The answer for `token` if one is still valid at `now`.
    pub(crate) fn get(&self, token: &str, now: Instant) -> Option<bool> {
        let answer = self.answers.get(token)?;
        if now < answer.until {
            Some(answer.active)
        } else {
            self.answers.remove(token);
            None
        }
    }

    /// Keeps `active` for `token` from `now`, for the time to live but no
    /// longer than `token_lifetime` (what is left until its `exp`).
    pub(crate) fn insert(&self, token: &str, active: bool, now: Instant, token_lifetime: Duration) {
        let keep = self.ttl.min(token_lifetime);
        if keep.is_zero() {
            return;
        }
        let answer = Answer {
            active,
            until: now + keep,
        };
        self.answers.insert(token.to_owned(), answer);
    }

    /// How many answers are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.answers.len()
    }
}

/// Asks `POST /oauth/introspect` whether tokens are still active.
pub(crate) struct Introspector {
    url: String,
    api_key: String,
    cache: AnswerCache,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Introspector")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("cache_ttl", &self.cache.ttl)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub(crate) fn new(url: String, api_key: String, cache_ttl: Duration, capacity: u64) -> Self {
        Introspector {
            url,
            api_key,
            cache: AnswerCache::new(cache_ttl, capacity),
        }
    }

    /// `Ok` when the server calls the token active; [`VerifyError::Revoked`]
    /// when it does not. Fails closed when the server cannot be asked.
    /// `expires_at` is the token's `exp` (seconds since the epoch).
    pub(crate) async fn check(
        &self,
        http: &reqwest::Client,
        token: &str,
        expires_at: i64,
    ) -> Result<(), VerifyError> {
        let active = match self.cache.get(token, Instant::now()) {
            Some(active) => active,
            None => {
                let active = self.ask(http, token).await?;
                self.cache
                    .insert(token, active, Instant::now(), lifetime_left(expires_at));
                active
            }
        };
        if active {
            Ok(())
        } else {
            Err(VerifyError::Revoked)
        }
    }

    async fn ask(&self, http: &reqwest::Client, token: &str) -> Result<bool, VerifyError> {
        let unavailable = |error: reqwest::Error| {
            VerifyError::Unavailable(format!("introspection: {}", error.without_url()))
        };
        let response = http
            .post(&self.url)
            .header(API_KEY_HEADER, &self.api_key)
            .form(&[("token", token)])
            .send()
            .await
            .map_err(unavailable)?;
        let answer: IntrospectionResponse = successful(response, "introspection")?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(answer.active)
    }
}

/// What is left of a token expiring at `expires_at` (seconds since the epoch).
fn lifetime_left(expires_at: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let expires_at = u64::try_from(expires_at).unwrap_or(0);
    Duration::from_secs(expires_at.saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_live_for_the_ttl() {
        let cache = AnswerCache::new(Duration::from_secs(10), 100);
        let now = Instant::now();
        cache.insert("a", true, now, Duration::from_secs(3600));
        assert_eq!(cache.get("a", now + Duration::from_secs(9)), Some(true));
        assert_eq!(cache.get("a", now + Duration::from_secs(10)), None);
        // An expired answer is dropped, not kept until evicted.
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn answers_never_outlive_their_token() {
        let cache = AnswerCache::new(Duration::from_secs(60), 100);
        let now = Instant::now();
        cache.insert("short", false, now, Duration::from_secs(2));
        assert_eq!(
            cache.get("short", now + Duration::from_secs(1)),
            Some(false)
        );
        assert_eq!(cache.get("short", now + Duration::from_secs(2)), None);
        cache.insert("expired", true, now, Duration::ZERO);
        assert_eq!(cache.get("expired", now), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = AnswerCache::new(Duration::from_secs(60), 50);
        let now = Instant::now();
        for number in 0..1_000 {
            cache.insert(
                &format!("token-{number}"),
                true,
                now,
                Duration::from_secs(600),
            );
        }
        assert!(cache.len() <= 50, "{} answers kept", cache.len());
        assert!(cache.len() > 0);
    }

    #[test]
    fn lifetime_left_is_never_negative() {
        assert_eq!(lifetime_left(0), Duration::ZERO);
        assert_eq!(lifetime_left(-5), Duration::ZERO);
        let in_a_minute = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let left = lifetime_left(i64::try_from(in_a_minute).unwrap());
        assert!(left <= Duration::from_secs(60) && left >= Duration::from_secs(58));
    }
}
