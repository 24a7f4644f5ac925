//! The [`Client`]: a `reqwest` client that logs in lazily, keeps a fresh access
//! token, and attaches the API key and the token to every request it sends.
//!
//! Credentials never leave the server's origin: the `reqwest` client follows
//! no redirect (a 3xx answer is [`Error::Redirect`]), request paths must start
//! with `/`, and [`Client::send`] refuses a request for any other origin.

use crate::config::{ClientBuilder, Credentials, RenewalPolicy, RetryPolicy};
use crate::error::{ApiError, Error};
use assetpool_wire::{
    ErrorCode, LoginRequest, RefreshRequest, TokenResponse, API_KEY_HEADER, API_TOKEN_HEADER,
    LOGIN_PATH, LOGOUT_PATH, REFRESH_PATH,
};
use reqwest::header::{HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// An access token and when to renew it.
struct AccessToken {
    value: String,
    renew_at: Instant,
    /// Its scopes, as the token response named them.
    scope: Option<String>,
}

/// The token state, behind one lock: whoever holds it renews, everyone else waits
/// and then finds the fresh token (single flight).
#[derive(Default)]
struct TokenState {
    access: Option<AccessToken>,
    refresh_token: Option<String>,
}

struct Inner {
    http: reqwest::Client,
    /// The base URL as given, without a trailing `/`; paths are appended to it.
    base_url: String,
    /// The same, parsed: requests must stay on its origin.
    base: Url,
    api_key: HeaderValue,
    credentials: Credentials,
    renewal: RenewalPolicy,
    retry: RetryPolicy,
    scope: Option<String>,
    state: Mutex<TokenState>,
    logins: AtomicU64,
    refreshes: AtomicU64,
}

/// How many times this client obtained tokens, by which grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Successful password logins.
    pub logins: u64,
    /// Successful refresh-token renewals.
    pub refreshes: u64,
}

/// An assetpool client. Cheap to clone; clones share the token.
///
/// `Debug` shows the base URL and the username only.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("api_key", &"[redacted]")
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for the server at `base_url`.
    pub fn builder(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        credentials: Credentials,
    ) -> ClientBuilder {
        ClientBuilder::new(base_url, api_key, credentials)
    }

    /// A client configured from the `ASSETPOOL_*` environment variables
    /// (see [`ClientBuilder::from_env`]).
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env()?.build()
    }

    pub(crate) fn from_builder(builder: ClientBuilder) -> Result<Client, Error> {
        let base_url = builder.base_url.trim_end_matches('/').to_owned();
        let base = parse_base_url(&base_url)?;
        if builder.api_key.is_empty() {
            return Err(Error::Config("the API key is empty".to_owned()));
        }
        let mut api_key = HeaderValue::from_str(&builder.api_key)
            .map_err(|_| Error::Config("the API key is not a valid header value".to_owned()))?;
        api_key.set_sensitive(true);
        let mut http = reqwest::Client::builder()
            .timeout(builder.timeout)
            .connect_timeout(builder.connect_timeout);
        if let Some(configure) = &builder.configure_http {
            http = configure(http);
        }
        // Last, so that nothing above can turn redirects back on.
        let http = http
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::transport)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                base,
                api_key,
                credentials: builder.credentials,
                renewal: builder.renewal,
                retry: builder.retry,
                scope: builder.scope,
                state: Mutex::new(TokenState::default()),
                logins: AtomicU64::new(0),
                refreshes: AtomicU64::new(0),
            }),
        })
    }

    /// The absolute URL of `path` on the server: the base URL followed by
    /// `path`, which must start with `/` (so that no path can name another
    /// host, as `@other.example/` would); [`Error::Config`] otherwise.
    pub fn url(&self, path: &str) -> Result<Url, Error> {
        if !path.starts_with('/') {
            return Err(Error::Config(
                "a request path must start with `/`".to_owned(),
            ));
        }
        let url = Url::parse(&format!("{}{path}", self.inner.base_url))
            .map_err(|_| Error::Config("the request path does not form a valid URL".to_owned()))?;
        self.check_origin(&url)?;
        Ok(url)
    }

    /// A request to `path` on the server (see [`Client::url`]), without
    /// credentials yet: pass it to [`Client::send`], which adds them.
    pub fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, Error> {
        Ok(self.inner.http.request(method, self.url(path)?))
    }

    /// `GET path`, to be passed to [`Client::send`].
    pub fn get(&self, path: &str) -> Result<RequestBuilder, Error> {
        self.request(Method::GET, path)
    }

    /// `POST path`, to be passed to [`Client::send`].
    pub fn post(&self, path: &str) -> Result<RequestBuilder, Error> {
        self.request(Method::POST, path)
    }

    /// Token counts so far.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            logins: self.inner.logins.load(Ordering::Relaxed),
            refreshes: self.inner.refreshes.load(Ordering::Relaxed),
        }
    }

    /// Sends `request` with `x-api-key` and a fresh access token.
    ///
    /// Logs in first if needed. A 401 `token_expired` or `token_revoked` renews
    /// the token and retries once; a 503 `overloaded` (or `storage_unavailable`)
    /// is retried by the [`RetryPolicy`]. Any other status of 400 or more is an
    /// [`Error::Api`] carrying the contract's error code. A request whose body
    /// cannot be cloned (a stream) is sent once, without retries.
    ///
    /// The request is sent by this client's own `reqwest` client, whichever
    /// built it, and only when its URL is on the server's origin (scheme, host
    /// and port of the base URL; [`Error::Config`] otherwise). A redirect is
    /// not followed: it is [`Error::Redirect`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let (_, request) = request.build_split();
        let template = request.map_err(build_error)?;
        self.check_origin(template.url())?;
        if template.try_clone().is_none() {
            // A streamed body: sent once, without retries.
            let token = self.access_token().await?;
            return self.execute(self.with_credentials(template, &token)?).await;
        }
        let mut renewed = false;
        let mut retries = 0;
        loop {
            let token = self.access_token().await?;
            let attempt = template
                .try_clone()
                .ok_or_else(|| Error::Config("the request cannot be cloned".to_owned()))?;
            let error = match self.execute(self.with_credentials(attempt, &token)?).await {
                Ok(response) => return Ok(response),
                Err(Error::Api(error)) => error,
                Err(other) => return Err(other),
            };
            match error.code {
                Some(ErrorCode::TokenExpired | ErrorCode::TokenRevoked) if !renewed => {
                    renewed = true;
                    self.invalidate(&token).await;
                }
                _ if self.should_retry(&error, retries) => {
                    tokio::time::sleep(self.inner.retry.jittered_delay(retries, error.retry_after))
                        .await;
                    retries += 1;
                }
                _ => return Err(Error::Api(error)),
            }
        }
    }

    /// `GET path` through [`Client::send`], decoding the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let response = self.send(self.get(path)?).await?;
        response
            .json()
            .await
            .map_err(|error| Error::Decode(error.without_url().to_string()))
    }

    /// A valid access token: the cached one while it is fresh, otherwise a new
    /// one (refresh token first, password login as fallback). Concurrent callers
    /// share one renewal.
    pub async fn access_token(&self) -> Result<String, Error> {
        let mut state = self.inner.state.lock().await;
        if let Some(access) = &state.access {
            if Instant::now() < access.renew_at {
                return Ok(access.value.clone());
            }
        }
        self.renew(&mut state).await?;
        state
            .access
            .as_ref()
            .map(|access| access.value.clone())
            .ok_or_else(|| Error::Decode("no access token after renewal".to_owned()))
    }

    /// The scopes of the current access token (logging in first if there is
    /// none), space-separated as the server granted them; `None` when nothing
    /// restricted the login (the token meets every scope requirement).
    pub async fn granted_scope(&self) -> Result<Option<String>, Error> {
        self.access_token().await?;
        let state = self.inner.state.lock().await;
        Ok(state
            .access
            .as_ref()
            .and_then(|access| access.scope.clone()))
    }

    /// Logs in with the password now (whatever the token state) and returns the
    /// server's token response; the client keeps using these tokens.
    pub async fn login(&self) -> Result<TokenResponse, Error> {
        let mut state = self.inner.state.lock().await;
        let tokens = self.password_login().await?;
        state.store(&tokens, self.inner.renewal, Instant::now());
        Ok(tokens)
    }

    /// Ends the session on the server (if there is one) and forgets the tokens.
    pub async fn logout(&self) -> Result<(), Error> {
        let mut state = self.inner.state.lock().await;
        let Some(access) = state.access.take() else {
            state.refresh_token = None;
            return Ok(());
        };
        state.refresh_token = None;
        let request = self.post(LOGOUT_PATH)?.build().map_err(Error::transport)?;
        self.execute(self.with_credentials(request, &access.value)?)
            .await?;
        Ok(())
    }

    /// Forgets `failed` if it is still the current token, so that the next call
    /// renews; a token already replaced by another task is left alone.
    async fn invalidate(&self, failed: &str) {
        let mut state = self.inner.state.lock().await;
        if state
            .access
            .as_ref()
            .is_some_and(|access| access.value == failed)
        {
            state.access = None;
        }
    }

    async fn renew(&self, state: &mut TokenState) -> Result<(), Error> {
        let started = Instant::now();
        if let Some(refresh_token) = state.refresh_token.take() {
            let body = RefreshRequest { refresh_token };
            match self.post_for_tokens(REFRESH_PATH, &body).await {
                Ok(tokens) => {
                    self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
                    state.store(&tokens, self.inner.renewal, started);
                    return Ok(());
                }
                // Spent, expired or its session revoked: log in again.
                Err(Error::Api(error))
                    if error.code == Some(ErrorCode::InvalidRefreshToken)
                        || error.code == Some(ErrorCode::InvalidRequest) => {}
                // The refresh token is not put back: without an answer it may have
                // been spent, and presenting it again would look like reuse and
                // revoke the session. The next call logs in instead.
                Err(other) => return Err(other),
            }
        }
        let tokens = self.password_login().await?;
        state.store(&tokens, self.inner.renewal, started);
        Ok(())
    }

    async fn password_login(&self) -> Result<TokenResponse, Error> {
        let body = LoginRequest {
            username: self.inner.credentials.username.clone(),
            password: self.inner.credentials.password.clone(),
            scope: self.inner.scope.clone(),
        };
        let tokens = self.post_for_tokens(LOGIN_PATH, &body).await?;
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        Ok(tokens)
    }

    /// POSTs `body` to a token endpoint, retrying on 503 by the policy.
    async fn post_for_tokens(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<TokenResponse, Error> {
        let mut retries = 0;
        loop {
            let request = self
                .post(path)?
                .header(API_KEY_HEADER, self.inner.api_key.clone())
                .json(body)
                .build()
                .map_err(Error::transport)?;
            match self.execute(request).await {
                Ok(response) => {
                    return response.json::<TokenResponse>().await.map_err(|error| {
                        Error::Decode(format!("not a token response: {}", error.without_url()))
                    })
                }
                Err(Error::Api(error)) if self.should_retry(&error, retries) => {
                    tokio::time::sleep(self.inner.retry.jittered_delay(retries, error.retry_after))
                        .await;
                    retries += 1;
                }
                Err(other) => return Err(other),
            }
        }
    }

    fn should_retry(&self, error: &ApiError, retries: u32) -> bool {
        error.status == 503
            && matches!(
                error.code,
                Some(ErrorCode::Overloaded | ErrorCode::StorageUnavailable)
            )
            && retries < self.inner.retry.max_retries
    }

    /// `request` with the API key and `token` (replacing any the caller set).
    fn with_credentials(&self, mut request: Request, token: &str) -> Result<Request, Error> {
        let mut token = HeaderValue::from_str(token).map_err(|_| {
            Error::Decode("the access token is not a valid header value".to_owned())
        })?;
        token.set_sensitive(true);
        let headers = request.headers_mut();
        headers.insert(API_KEY_HEADER, self.inner.api_key.clone());
        headers.insert(API_TOKEN_HEADER, token);
        Ok(request)
    }

    /// Sends `request` (no redirect followed) and sorts out the answer ([`check`]).
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        self.check_origin(request.url())?;
        let response = self
            .inner
            .http
            .execute(request)
            .await
            .map_err(Error::transport)?;
        check(response).await
    }

    /// [`Error::Config`] unless `url` is on the server's origin.
    fn check_origin(&self, url: &Url) -> Result<(), Error> {
        let base = &self.inner.base;
        let same = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        if same {
            Ok(())
        } else {
            Err(Error::Config(
                "the request is not for the server's origin (scheme, host and port of the base URL); \
                 credentials are sent there only"
                    .to_owned(),
            ))
        }
    }
}

/// A request that `reqwest` could not build (a bad URL or header), as
/// [`Error::Config`] with the cause but without the URL.
fn build_error(error: reqwest::Error) -> Error {
    let error = error.without_url();
    let cause = std::error::Error::source(&error)
        .map(|source| format!(": {source}"))
        .unwrap_or_default();
    Error::Config(format!("the request cannot be built: {error}{cause}"))
}

/// The base URL, checked: `http` or `https`, a host, no query or fragment.
fn parse_base_url(base_url: &str) -> Result<Url, Error> {
    let scheme_error =
        || Error::Config("the base URL must start with http:// or https://".to_owned());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(scheme_error());
    }
    let base = Url::parse(base_url)
        .map_err(|_| Error::Config("the base URL is not a valid URL".to_owned()))?;
    if base.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config("the base URL has no host".to_owned()));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(Error::Config(
            "the base URL must not have a query or a fragment".to_owned(),
        ));
    }
    Ok(base)
}

impl TokenState {
    fn store(&mut self, tokens: &TokenResponse, renewal: RenewalPolicy, issued: Instant) {
        let lifetime = Duration::from_secs(tokens.expires_in);
        self.access = Some(AccessToken {
            value: tokens.access_token.clone(),
            renew_at: issued + lifetime.saturating_sub(renewal.margin(lifetime)),
            scope: tokens.scope.clone(),
        });
        self.refresh_token = Some(tokens.refresh_token.clone());
    }
}

/// `Ok` for a status below 400 other than a redirect; a redirect (3xx but
/// 304 Not Modified) is [`Error::Redirect`], a refusal an [`ApiError`].
async fn check(response: Response) -> Result<Response, Error> {
    let status = response.status();
    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        return Err(Error::Redirect {
            status: status.as_u16(),
            location,
        });
    }
    if status.as_u16() < 400 {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let text = |name: &str| body.get(name).and_then(|value| value.as_str());
    let error = text("error").unwrap_or_default().to_owned();
    let message = text("message")
        .or_else(|| text("error_description"))
        .unwrap_or_default()
        .to_owned();
    let code = serde_json::from_value::<ErrorCode>(serde_json::Value::from(error.as_str())).ok();
    Err(Error::Api(ApiError {
        status: status.as_u16(),
        code,
        error,
        message,
        retry_after,
    }))
}

/// Sends a `reqwest` request through a [`Client`]: `request.send_with(&client)`
/// is `client.send(request)`.
pub trait RequestBuilderExt {
    /// Sends the request with the client's API key and token (see [`Client::send`]).
    fn send_with(self, client: &Client) -> impl Future<Output = Result<Response, Error>> + Send;
}

impl RequestBuilderExt for RequestBuilder {
    fn send_with(self, client: &Client) -> impl Future<Output = Result<Response, Error>> + Send {
        let client = client.clone();
        async move { client.send(self).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn client(base_url: &str) -> Result<Client, Error> {
        Client::builder(
            base_url,
            "apk_prod_x",
            Credentials::new("a@example.com", "pw"),
        )
        .build()
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(client("https://auth.example.com/").is_ok());
        assert!(client("http://127.0.0.1:8080/prefix").is_ok());
        for bad in [
            "ftp://auth.example.com",
            "auth.example.com",
            "https://auth.example.com/?x=1",
            "https://auth.example.com/#top",
            "http://",
        ] {
            assert!(
                matches!(client(bad), Err(Error::Config(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn paths_stay_on_the_base_origin() {
        let client = client("http://127.0.0.1:8080/prefix/").unwrap();
        assert_eq!(
            client.url("/v1/resource").unwrap().as_str(),
            "http://127.0.0.1:8080/prefix/v1/resource"
        );
        for bad in [
            "v1/resource",
            "@evil.example/v1",
            ".evil.example/v1",
            ":9090/v1",
            "",
        ] {
            assert!(
                matches!(client.url(bad), Err(Error::Config(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn redirects_and_not_modified_are_told_apart() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let answer = |status: u16| {
            let response = http_response(status);
            runtime.block_on(check(response))
        };
        for status in [301, 302, 303, 307, 308] {
            assert!(
                matches!(answer(status), Err(Error::Redirect { status: got, .. }) if got == status),
                "{status}"
            );
        }
        assert!(answer(304).is_ok());
        assert!(answer(200).is_ok());
    }

    fn http_response(status: u16) -> Response {
        let response = http::Response::builder()
            .status(status)
            .header("location", "https://elsewhere.example/")
            .body(Vec::<u8>::new())
            .unwrap();
        Response::from(response)
    }
}
