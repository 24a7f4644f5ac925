//! Optional revocation check through the server's RFC 7662 introspection
//! endpoint, with a short cache per token.

use crate::error::VerifyError;
use crate::verifier::successful;
use assetpool_wire::{IntrospectionResponse, API_KEY_HEADER};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Most answers kept; beyond, expired ones are dropped, then all.
const CACHE_CAPACITY: usize = 10_000;

/// Asks `POST /oauth/introspect` whether tokens are still active.
pub(crate) struct Introspector {
    url: String,
    api_key: String,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Introspector")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub(crate) fn new(url: String, api_key: String, cache_ttl: Duration) -> Self {
        Introspector {
            url,
            api_key,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` when the server calls the token active; [`VerifyError::Revoked`]
    /// when it does not. Fails closed when the server cannot be asked.
    pub(crate) async fn check(
        &self,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<(), VerifyError> {
        let cached = self.cache.lock().await.get(token).copied();
        let active = match cached {
            Some((active, at)) if at.elapsed() < self.cache_ttl => active,
            _ => {
                let active = self.ask(http, token).await?;
                self.remember(token, active).await;
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

    async fn remember(&self, token: &str, active: bool) {
        let mut cache = self.cache.lock().await;
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.cache_ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), (active, Instant::now()));
    }
}
