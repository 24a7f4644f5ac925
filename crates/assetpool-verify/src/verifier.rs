//! [`Verifier`]: checks access tokens offline against the server's JWKS.

use crate::claims::AccessClaims;
use crate::error::VerifyError;
use crate::introspect::Introspector;
use crate::jwks::JwksCache;
use assetpool_wire::{Environment, API_TOKEN_HEADER, INTROSPECT_PATH, JWKS_PATH};
use http::header::AUTHORIZATION;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest token looked at, in bytes (the server's own limit).
const MAX_TOKEN_BYTES: usize = 4096;

/// Adjusts the `reqwest` client before it is built (see [`VerifierBuilder::configure_http`]).
type ConfigureHttp = Arc<dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync>;

/// Builds a [`Verifier`].
#[derive(Clone)]
pub struct VerifierBuilder {
    base_url: String,
    issuer: Option<String>,
    audience: String,
    environment: Environment,
    leeway: Duration,
    jwks_max_age: Duration,
    refetch_interval: Duration,
    introspection: Option<(String, Duration)>,
    timeout: Duration,
    configure_http: Option<ConfigureHttp>,
    introspection_capacity: u64,
    application: Option<String>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("VerifierBuilder")
            .field("base_url", &self.base_url)
            .field("issuer", &self.issuer)
            .field("environment", &self.environment)
            .field("application", &self.application)
            .field("introspection", &self.introspection.is_some())
            .field("configure_http", &self.configure_http.is_some())
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// The issuer (`iss`) required of tokens. Default: the server's base URL,
    /// which is what a server records as its issuer unless configured otherwise.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The application (`app` claim, an `app_…` id) whose tokens this backend
    /// accepts; tokens issued through a key of any other application are
    /// [`VerifyError::Invalid`], as the server itself refuses them. Set it
    /// unless this backend serves every application of the server: every
    /// application shares the issuer and, by default, the audience, so
    /// without it a user of application A (whose key may ship inside a
    /// client) is accepted by application B's backend.
    pub fn application(mut self, application: impl Into<String>) -> Self {
        self.application = Some(application.into());
        self
    }

    /// The audience (`aud`) required of tokens. Default: `assetpool`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Clock difference tolerated on `exp`, `nbf` and `iat`. Default: 5 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long fetched keys are used before the JWKS is fetched again. Default: 5 min.
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// Least time between two fetches caused by an unknown `kid`. Default: 60 s.
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Also asks the server (RFC 7662 introspection, authenticated by `api_key`,
    /// which must belong to the tokens' application) whether each token's
    /// session is still live; answers are cached for `cache_ttl`, never beyond
    /// the token's own expiry, in a bounded cache
    /// ([`VerifierBuilder::introspection_cache_capacity`]). Off by default:
    /// without it, a revoked token is accepted until it expires.
    pub fn introspection(mut self, api_key: impl Into<String>, cache_ttl: Duration) -> Self {
        self.introspection = Some((api_key.into(), cache_ttl));
        self
    }

    /// Time limit of requests to the server. Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most introspection answers kept (the least recently used go first).
    /// Default: 10 000.
    pub fn introspection_cache_capacity(mut self, capacity: u64) -> Self {
        self.introspection_capacity = capacity.max(1);
        self
    }

    /// Adjusts the `reqwest` client that fetches the JWKS and asks for
    /// introspection: a proxy, a private root certificate, a client
    /// certificate. `configure` gets a builder that already has this
    /// builder's timeout and may change it.
    ///
    /// Whatever `configure` does, redirects stay off
    /// ([`reqwest::redirect::Policy::none`] is set after it), so that the keys
    /// come from the base URL only and the API key and the token under
    /// introspection go nowhere else. A ready-made `reqwest::Client` is not
    /// accepted for the same reason: its redirect policy cannot be checked.
    ///
    /// ```no_run
    /// # use assetpool_verify::{Environment, Verifier};
    /// # fn run(ca_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = reqwest::Certificate::from_pem(ca_pem)?;
    /// let verifier = Verifier::builder("https://auth.internal", Environment::Production)
    ///     .configure_http(move |http| {
    ///         http.add_root_certificate(ca.clone())
    ///             .no_proxy()
    ///     })
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn configure_http(
        mut self,
        configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure_http = Some(Arc::new(configure));
        self
    }

    /// Builds the verifier. Nothing is fetched until the first token arrives.
    ///
    /// Its HTTP client follows no redirect: a 3xx answer from the JWKS or
    /// introspection endpoint is [`VerifyError::Unavailable`], so that neither
    /// the keys nor the API key and the introspected token ever come from or go
    /// to another URL than the base URL's.
    pub fn build(self) -> Result<Verifier, VerifyError> {
        let mut http = reqwest::Client::builder().timeout(self.timeout);
        if let Some(configure) = &self.configure_http {
            http = configure(http);
        }
        // Last, so that nothing above can turn redirects back on.
        let http = http
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| VerifyError::Unavailable(error.without_url().to_string()))?;
        let base = self.base_url.trim_end_matches('/').to_owned();
        let capacity = self.introspection_capacity;
        let introspector = self.introspection.map(|(api_key, ttl)| {
            Introspector::new(format!("{base}{INTROSPECT_PATH}"), api_key, ttl, capacity)
        });
        Ok(Verifier {
            inner: Arc::new(Inner {
                jwks: JwksCache::new(
                    format!("{base}{JWKS_PATH}"),
                    self.jwks_max_age,
                    self.refetch_interval,
                ),
                issuer: self.issuer.unwrap_or_else(|| base.clone()),
                audience: self.audience,
                environment: self.environment,
                leeway: self.leeway,
                introspector,
                http,
                application: self.application,
            }),
        })
    }
}

struct Inner {
    jwks: JwksCache,
    issuer: String,
    audience: String,
    environment: Environment,
    leeway: Duration,
    introspector: Option<Introspector>,
    http: reqwest::Client,
    application: Option<String>,
}

/// Verifies assetpool access tokens. Cheap to clone; clones share the key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("environment", &self.inner.environment)
            .field("introspection", &self.inner.introspector)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A builder for tokens of the server at `base_url` running in `environment`.
    pub fn builder(base_url: impl Into<String>, environment: Environment) -> VerifierBuilder {
        VerifierBuilder {
            base_url: base_url.into(),
            issuer: None,
            audience: "assetpool".to_owned(),
            environment,
            leeway: Duration::from_secs(5),
            jwks_max_age: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(60),
            introspection: None,
            timeout: Duration::from_secs(10),
            configure_http: None,
            introspection_capacity: crate::introspect::DEFAULT_CAPACITY,
            application: None,
        }
    }

    /// How many times the JWKS has been fetched (for monitoring and tests).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks.fetches()
    }

    /// Verifies the token of a request's headers (`x-api-token` or
    /// `Authorization: Bearer`, as the server reads them).
    pub async fn verify_headers(&self, headers: &HeaderMap) -> Result<AccessClaims, VerifyError> {
        let token = token_from_headers(headers)?;
        self.verify(&token).await
    }

    /// Verifies one token: `alg` EdDSA, `typ` `at+jwt`, a `kid` of the server's
    /// JWKS, the signature, `exp` and `nbf` (with the leeway), `iat` not in the
    /// future, `iss`, `aud`, `env` and, if configured, `app`; then, if
    /// configured, introspection.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if header.alg != Algorithm::EdDSA || !typ_ok {
            return Err(VerifyError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::Invalid)?;
        let key = inner.jwks.key(&inner.http, kid).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = inner.leeway.as_secs();
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "iat", "nbf", "iss", "aud", "sub"]
            .map(String::from)
            .into();
        validation.set_issuer(&[&inner.issuer]);
        validation.set_audience(&[&inner.audience]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                _ => VerifyError::Invalid,
            })?
            .claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let latest = i64::try_from(now.saturating_add(inner.leeway.as_secs())).unwrap_or(i64::MAX);
        if claims.env != inner.environment || claims.iat > latest {
            return Err(VerifyError::Invalid);
        }
        if inner
            .application
            .as_ref()
            .is_some_and(|application| claims.app != *application)
        {
            return Err(VerifyError::Invalid);
        }
        if let Some(introspector) = &inner.introspector {
            introspector.check(&inner.http, token, claims.exp).await?;
        }
        Ok(claims)
    }
}

/// `response` if it is a success; [`VerifyError::Unavailable`] naming `what`
/// otherwise. A redirect counts as a failure: it is never followed.
pub(crate) fn successful(
    response: reqwest::Response,
    what: &str,
) -> Result<reqwest::Response, VerifyError> {
    let status = response.status();
    if status.is_redirection() {
        return Err(VerifyError::Unavailable(format!(
            "{what}: the server answered HTTP status {}, a redirect, which is not followed",
            status.as_u16()
        )));
    }
    response
        .error_for_status()
        .map_err(|error| VerifyError::Unavailable(format!("{what}: {}", error.without_url())))
}

/// Reads a request's token as the server does: `x-api-token` or
/// `Authorization: Bearer`; each at most once, and the same token if both are present.
pub fn token_from_headers(headers: &HeaderMap) -> Result<String, VerifyError> {
    let single = |name: &str| -> Result<Option<String>, VerifyError> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(VerifyError::Conflicting);
        }
        Ok(first.map(|value| value.to_str().unwrap_or_default().to_owned()))
    };
    let header_token = single(API_TOKEN_HEADER)?;
    let bearer = single(AUTHORIZATION.as_str())?.and_then(|value| {
        let (scheme, rest) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned())
    });
    match (header_token, bearer) {
        (Some(header_token), Some(bearer)) if header_token != bearer => {
            Err(VerifyError::Conflicting)
        }
        (Some(token), _) | (None, Some(token)) => Ok(token),
        (None, None) => Err(VerifyError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn tokens_are_read_like_the_server_reads_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(token_from_headers(&headers), Err(VerifyError::Missing));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(token_from_headers(&headers).as_deref(), Ok("abc"));
        headers.insert(API_TOKEN_HEADER, HeaderValue::from_static("other"));
        assert_eq!(token_from_headers(&headers), Err(VerifyError::Conflicting));
    }

    #[tokio::test]
    async fn garbage_is_invalid_without_any_fetch() {
        let verifier = Verifier::builder("http://127.0.0.1:9", Environment::Production)
            .build()
            .unwrap();
        assert_eq!(
            verifier.verify("not a jwt").await,
            Err(VerifyError::Invalid)
        );
        assert_eq!(verifier.jwks_fetches(), 0);
    }
}
