//! Building a [`Client`]: base URL, API key, credentials and the knobs.

use crate::client::Client;
use crate::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Adjusts the `reqwest` client before it is built (see [`ClientBuilder::configure_http`]).
pub(crate) type ConfigureHttp =
    Arc<dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync>;

/// Environment variable holding the server's base URL.
pub const URL_ENV: &str = "ASSETPOOL_URL";
/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "ASSETPOOL_API_KEY";
/// Environment variable holding the username (email).
pub const USERNAME_ENV: &str = "ASSETPOOL_USERNAME";
/// Environment variable holding the password.
pub const PASSWORD_ENV: &str = "ASSETPOOL_PASSWORD";

/// When a token is renewed: `margin` before it expires, where the margin is
/// `fraction` of the token's lifetime but at most `max_margin`.
///
/// The defaults (10 %, at most 30 s) renew a one-day token 30 s early and a
/// 30-second token 3 s early.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenewalPolicy {
    /// Share of the lifetime kept as margin, between 0 and 1.
    pub fraction: f64,
    /// Largest margin.
    pub max_margin: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            fraction: 0.1,
            max_margin: Duration::from_secs(30),
        }
    }
}

impl RenewalPolicy {
    /// How long before its expiry a token of `lifetime` is renewed.
    pub fn margin(&self, lifetime: Duration) -> Duration {
        let fraction = self.fraction.clamp(0.0, 1.0);
        lifetime.mul_f64(fraction).min(self.max_margin)
    }
}

/// Retries of requests the server refused with 503 (`overloaded` or
/// `storage_unavailable`): each waits the larger of the exponential backoff and
/// the server's `Retry-After` (in seconds, the form assetpool sends), never more
/// than `max_delay` ([`RetryPolicy::delay`]), plus a random jitter of up to a
/// quarter of that ([`RetryPolicy::jittered_delay`]), so that clients refused
/// together do not all come back at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest wait before a retry, also when `Retry-After` asks for more.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first), given the
    /// server's `Retry-After`, before jitter.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self
            .initial_backoff
            .saturating_mul(2_u32.saturating_pow(retry.min(16)));
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }

    /// The wait the client uses: [`RetryPolicy::delay`] plus a random part of
    /// up to a quarter of it. Never less than `Retry-After` (within `max_delay`).
    pub fn jittered_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let delay = self.delay(retry, retry_after);
        delay + (delay / 4).mul_f64(rand::random::<f64>())
    }
}

/// A username and password for the password grant. `Debug` hides the password.
#[derive(Clone)]
pub struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl Credentials {
    /// Credentials of one user.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Builds a [`Client`]. `Debug` hides the API key and the password.
#[derive(Clone)]
pub struct ClientBuilder {
    pub(crate) base_url: String,
    pub(crate) api_key: String,
    pub(crate) credentials: Credentials,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) renewal: RenewalPolicy,
    pub(crate) retry: RetryPolicy,
    pub(crate) configure_http: Option<ConfigureHttp>,
    pub(crate) scope: Option<String>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .field("renewal", &self.renewal)
            .field("retry", &self.retry)
            .field("configure_http", &self.configure_http.is_some())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A builder for the server at `base_url` (e.g. `https://auth.example.com`).
    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: api_key.into(),
            credentials,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            renewal: RenewalPolicy::default(),
            retry: RetryPolicy::default(),
            configure_http: None,
            scope: None,
        }
    }

    /// A builder from `ASSETPOOL_URL`, `ASSETPOOL_API_KEY`, `ASSETPOOL_USERNAME`
    /// and `ASSETPOOL_PASSWORD`.
    pub fn from_env() -> Result<Self, Error> {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| Error::Config(format!("{name} is not set")))
        };
        Ok(ClientBuilder::new(
            read(URL_ENV)?,
            read(API_KEY_ENV)?,
            Credentials::new(read(USERNAME_ENV)?, read(PASSWORD_ENV)?),
        ))
    }

    /// Total time limit of one HTTP request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time limit for connecting (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// When tokens are renewed (default: 10 % of their lifetime before expiry, at most 30 s).
    pub fn renewal(mut self, renewal: RenewalPolicy) -> Self {
        self.renewal = renewal;
        self
    }

    /// Retrying on 503 (default: 3 retries, 200 ms backoff, honouring `Retry-After`).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Scopes to ask for at login, space-separated (`"orders:read"`): the
    /// token then carries at most these (within what the API key and the
    /// user allow; asking for more is `invalid_scope`). Default: none asked,
    /// the token carries whatever key and user allow.
    /// [`Client::granted_scope`] tells what was granted.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Adjusts the `reqwest` client this client sends with: a proxy, another
    /// root certificate, a client certificate. `configure` gets a builder that
    /// already has this builder's timeouts and may change them.
    ///
    /// Whatever `configure` does, redirects stay off
    /// ([`reqwest::redirect::Policy::none`] is set after it): the client never
    /// follows a redirect, so the API key, tokens and password reach the
    /// configured server only. A ready-made `reqwest::Client` is not accepted
    /// for the same reason: its redirect policy cannot be checked.
    pub fn configure_http(
        mut self,
        configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure_http = Some(Arc::new(configure));
        self
    }

    /// Builds the client. No request is sent: the first call logs in.
    pub fn build(self) -> Result<Client, Error> {
        Client::from_builder(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_margin_is_a_capped_fraction() {
        let policy = RenewalPolicy::default();
        assert_eq!(
            policy.margin(Duration::from_secs(30)),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.margin(Duration::from_secs(86_400)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn retry_delay_honours_retry_after_within_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, None), Duration::from_millis(200));
        assert_eq!(policy.delay(1, None), Duration::from_millis(400));
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(600))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn jitter_adds_up_to_a_quarter() {
        let policy = RetryPolicy::default();
        let delays: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| policy.jittered_delay(0, Some(Duration::from_secs(2))))
            .collect();
        assert!(
            delays
                .iter()
                .all(|delay| *delay >= Duration::from_secs(2)
                    && *delay <= Duration::from_millis(2500))
        );
        assert!(delays.len() > 1, "no jitter: {delays:?}");
    }

    #[test]
    fn debug_hides_secrets() {
        let builder = ClientBuilder::new(
            "http://localhost",
            "apk_prod_secretkey",
            Credentials::new("a@example.com", "hunter2-hunter2"),
        );
        let debug = format!("{builder:?}");
        assert!(!debug.contains("secretkey"));
        assert!(!debug.contains("hunter2"));
        assert!(debug.contains("a@example.com"));
    }
}
