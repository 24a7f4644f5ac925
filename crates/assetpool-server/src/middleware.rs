//! Request ids, request logging and metrics and the security headers of
//! every answer ([`ObserveLayer`]), and the checks, time limit and
//! `Cache-Control` default of assetpool's own routes ([`OwnRoutesLayer`]).
//!
//! Both are hand-written tower layers rather than `axum::middleware::from_fn`:
//! a `from_fn` layer clones the service it wraps and boxes two futures on
//! every request, which cost about 2,000 to 4,000 instructions each on the
//! verify path (BENCHMARKS.md, "Where the instructions go").
//!
//! Every response carries `x-request-id`: the client's own when it sent a
//! usable one (visible ASCII, at most [`MAX_CLIENT_REQUEST_ID`] bytes),
//! otherwise a new one made of a random per-process prefix and a counter (32
//! hex digits, unique across restarts and servers without a random draw per
//! request). In reverse-proxy mode the id is also set on the forwarded request.
//!
//! Logging is cheap on the hot path: each request is logged at `debug` on the
//! `assetpool::http` target (enable it with
//! `RUST_LOG=info,assetpool::http=debug`); answers with a 5xx status are
//! logged at `warn` and requests slower than [`SLOW_REQUEST`] at `info`. Logs
//! name the path without its query string and never a header value.

use crate::error::ApiError;
use crate::extract::client_address::{peer_address, MalformedForwarding};
use crate::extract::refuse_control_characters;
use crate::extract::{ClientAddress, TrustedProxies};
use crate::gateway::proxy::Proxied;
use crate::listener::Tls;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::usage::UsageSlot;
use assetpool_wire::ErrorCode;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};
use tracing::Instrument as _;

/// `Strict-Transport-Security` of answers over TLS: one year, this host only
/// (whether subdomains and preloading follow is the operator's choice, made
/// at a proxy that knows the domain).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Adds `X-Content-Type-Options: nosniff` to every answer and, to answers
/// of requests that came over TLS (the listener's [`Tls`] marker),
/// `Strict-Transport-Security` ([`HSTS`]). A value already set (by an
/// upstream in reverse-proxy mode) is kept.
///
/// [`ObserveLayer`] does this for the main router; this middleware is for the
/// metrics-only listener.
pub async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let over_tls = request.extensions().get::<Tls>().is_some();
    let mut response = next.run(request).await;
    add_security_headers(&mut response, over_tls);
    response
}

fn add_security_headers(response: &mut Response, over_tls: bool) {
    let headers = response.headers_mut();
    headers
        .entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if over_tls {
        headers
            .entry(axum::http::header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HSTS);
    }
}

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-sent request id that is kept; a longer one is replaced.
pub const MAX_CLIENT_REQUEST_ID: usize = 128;
/// Requests slower than this are logged at `info`.
pub const SLOW_REQUEST: Duration = Duration::from_secs(1);

/// A new request id: 16 hex digits of a random per-process prefix, then 16 of a counter.
pub fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
        high
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (index, byte) in text.iter_mut().enumerate() {
        let (value, shift) = if index < 16 {
            (prefix, 60 - 4 * index)
        } else {
            (count, 60 - 4 * (index - 16))
        };
        *byte = HEX[usize::from(((value >> shift) & 0xf) as u8)];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

/// The client's request id when it is usable.
fn client_request_id(request: &Request) -> Option<HeaderValue> {
    let mut values = request.headers().get_all(&REQUEST_ID).iter();
    let value = values.next()?;
    let usable = values.next().is_none()
        && !value.is_empty()
        && value.len() <= MAX_CLIENT_REQUEST_ID
        && value.as_bytes().iter().all(|byte| byte.is_ascii_graphic());
    usable.then(|| value.clone())
}

/// The outer layer of every route: sets the request id, then counts and logs
/// each request once, and adds the security headers ([`security_headers`])
/// to every answer, proxied ones included.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    forwards: bool,
    trusted_proxies: TrustedProxies,
    usage_tracking: bool,
}

impl ObserveLayer {
    /// Counts into `state`'s metrics; in reverse-proxy mode the request id is
    /// also set on the request, for the upstream.
    pub fn new(state: &AppState) -> Self {
        ObserveLayer {
            metrics: state.metrics.clone(),
            forwards: state.upstream.is_some(),
            trusted_proxies: state.trusted_proxies.clone(),
            usage_tracking: state.service.settings().usage_tracking,
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            forwards: self.forwards,
            trusted_proxies: self.trusted_proxies.clone(),
            usage_tracking: self.usage_tracking,
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    forwards: bool,
    /// Where to read client addresses.
    trusted_proxies: TrustedProxies,
    /// Whether requests are counted per key (a [`UsageSlot`] on each).
    usage_tracking: bool,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = match client_request_id(&request) {
            Some(id) => id,
            None => {
                let id = new_request_id();
                if self.forwards {
                    // Forwarded requests carry the id to the upstream.
                    request.headers_mut().insert(REQUEST_ID, id.clone());
                }
                id
            }
        };
        let over_tls = request.extensions().get::<Tls>().is_some();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let uri = request.uri().clone();
        // The client address, resolved once for every handler; a trusted
        // proxy's malformed forwarding header is refused here.
        let peer = peer_address(request.extensions());
        let client = self.trusted_proxies.client_address(peer, request.headers());
        let mut slot = None;
        let future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> =
            match client {
                Ok(client) => {
                    request.extensions_mut().insert(ClientAddress(client));
                    if self.usage_tracking {
                        let usage = Arc::new(UsageSlot::new(client));
                        request.extensions_mut().insert(usage.clone());
                        slot = Some(usage);
                    }
                    // The inner future owns what it needs: no clone of the inner service.
                    Box::pin(self.inner.call(request))
                }
                Err(MalformedForwarding) => {
                    let header = self.trusted_proxies.header().name();
                    let refusal = ApiError::invalid_request(format!(
                        "the trusted proxy's {header} header does not name a client address"
                    ));
                    Box::pin(async move { Ok(refusal.into_response()) })
                }
            };
        let metrics = self.metrics.clone();
        // Every log line of the request (a 5xx cause included) carries its id.
        // `%`: ids the server makes are written as they are (no `Debug` escaping
        // of each character); see `RequestIdText`.
        let span = tracing::info_span!("request", request_id = %RequestIdText(&request_id));
        Box::pin(
            async move {
                let mut response = future.await?;
                add_security_headers(&mut response, over_tls);
                response.headers_mut().insert(REQUEST_ID, request_id);
                let route = if response.extensions().get::<Proxied>().is_some() {
                    "upstream"
                } else {
                    route.as_ref().map_or("unmatched", MatchedPath::as_str)
                };
                let status = response.status().as_u16();
                if let Some(slot) = slot {
                    slot.count(&response);
                }
                let latency = started.elapsed();
                metrics.count_request(route, status, latency);
                if let Some(code) = response.extensions().get::<ErrorCode>() {
                    metrics.count_failure(*code);
                }
                log(&method, &uri, route, status, latency, &response);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// A request id as log text: as it is when made only of letters, digits and
/// `.`, `_`, `:`, `-` (every id this server makes), quoted and escaped
/// otherwise, so a client's id (any visible ASCII, see [`client_request_id`])
/// cannot pass for other fields or spans in a text log.
struct RequestIdText<'a>(&'a HeaderValue);

impl std::fmt::Display for RequestIdText<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_str().unwrap_or("-");
        let plain = text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'));
        if plain {
            formatter.write_str(text)
        } else {
            write!(formatter, "{text:?}")
        }
    }
}

/// Logs one request: `debug`, or `info` when slow, or `warn` on a 5xx answer.
fn log(
    method: &Method,
    uri: &Uri,
    route: &str,
    status: u16,
    latency: Duration,
    response: &Response,
) {
    let request_id = response
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let path = uri.path();
    if status >= 500 {
        tracing::warn!(target: "assetpool::http", %method, path, route, status,
            latency_ms, request_id, "request failed");
    } else if latency >= SLOW_REQUEST {
        tracing::info!(target: "assetpool::http", %method, path, route, status,
            latency_ms, request_id, "slow request");
    } else {
        tracing::debug!(target: "assetpool::http", %method, path, route, status,
            latency_ms, request_id, "request");
    }
}

/// The layer of assetpool's own routes (not of requests forwarded to an
/// upstream), in this order: a path or query that decodes to a control
/// character is refused ([`refuse_control_characters`]); a request that takes
/// longer than the limit is answered 408 `request_timeout`; an answer without
/// `Cache-Control` gets `no-store`.
///
/// The time limit's timer is made only when the handler does not answer on
/// its first poll (the verify path answers at once), and the limit then
/// counts from that poll.
#[derive(Clone, Copy, Debug)]
pub struct OwnRoutesLayer {
    limit: Duration,
}

impl OwnRoutesLayer {
    /// Requests may take up to `limit`.
    pub fn new(limit: Duration) -> Self {
        OwnRoutesLayer { limit }
    }
}

impl<S> Layer<S> for OwnRoutesLayer {
    type Service = OwnRoutes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OwnRoutes {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`OwnRoutesLayer`].
#[derive(Clone, Debug)]
pub struct OwnRoutes<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for OwnRoutes<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Err(refusal) = refuse_control_characters(request.uri()) {
            let mut response = refusal.into_response();
            no_store_unless_set(&mut response);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let inner = self.inner.call(request);
        let limit = self.limit;
        Box::pin(async move {
            let mut inner = std::pin::pin!(inner);
            let first = std::future::poll_fn(|context| Poll::Ready(inner.as_mut().poll(context)));
            let answered = match first.await {
                Poll::Ready(answered) => answered,
                Poll::Pending => match tokio::time::timeout(limit, inner).await {
                    Ok(answered) => answered,
                    Err(_) => Ok(ApiError::new(ErrorCode::RequestTimeout).into_response()),
                },
            };
            let mut response = match answered {
                Ok(response) => response,
                Err(never) => match never {},
            };
            no_store_unless_set(&mut response);
            Ok(response)
        })
    }
}

/// `Cache-Control: no-store` on an answer that sets no `Cache-Control`.
fn no_store_unless_set(response: &mut Response) {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_ids_are_unique_hex() {
        let first = new_request_id();
        let second = new_request_id();
        assert_ne!(first, second);
        for id in [&first, &second] {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        assert_eq!(first.as_bytes()[..16], second.as_bytes()[..16]);
    }

    #[test]
    fn client_ids_are_quoted_in_logs_unless_plain() {
        let text = |value: &str| RequestIdText(&HeaderValue::from_str(value).unwrap()).to_string();
        assert_eq!(text("0123abcdef"), "0123abcdef");
        assert_eq!(text("trace-me_4711.a:b"), "trace-me_4711.a:b");
        assert_eq!(
            text("x}:request{request_id=victim"),
            r#""x}:request{request_id=victim""#
        );
        assert_eq!(text(r#"a"b"#), r#""a\"b""#);
    }

    #[test]
    fn client_ids_are_kept_only_when_usable() {
        let with = |values: &[&str]| {
            let mut request = Request::new(axum::body::Body::empty());
            for value in values {
                request
                    .headers_mut()
                    .append(REQUEST_ID, HeaderValue::from_str(value).unwrap());
            }
            client_request_id(&request)
        };
        assert_eq!(with(&["abc-123"]).unwrap(), "abc-123");
        assert!(with(&[]).is_none());
        assert!(with(&["a b"]).is_none());
        assert!(with(&["one", "two"]).is_none());
        assert!(with(&[&"x".repeat(MAX_CLIENT_REQUEST_ID + 1)]).is_none());
        assert!(with(&[&"x".repeat(MAX_CLIENT_REQUEST_ID)]).is_some());
    }
}
