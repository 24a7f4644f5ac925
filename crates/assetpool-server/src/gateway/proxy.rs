//! Reverse-proxy mode (`serve --upstream URL`): every request outside
//! assetpool's own routes is checked like a protected endpoint, then forwarded
//! to the upstream with hyper-util's client.
//!
//! Bodies stream both ways (nothing is buffered whole, and the 16 KiB limit of
//! assetpool's own endpoints does not apply). The upstream timeout covers the
//! time until the upstream's response headers arrive; the body then streams
//! for as long as it takes. A protocol upgrade (WebSocket) accepted by the
//! upstream with 101 becomes a byte tunnel between client and upstream.

use super::headers::{
    keep_upgrade, remove_credentials_and_identity, remove_hop_by_hop, requested_upgrade,
    set_forwarded, Hop,
};
use super::identity_headers;
use crate::error::ApiError;
use crate::extract::authenticate_request;
use crate::listener::Tls;
use crate::state::AppState;
use assetpool_wire::ErrorCode;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::{PathAndQuery, Scheme};
use axum::http::{Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Path prefixes (and exact paths) that belong to assetpool and are never forwarded.
const OWN_PREFIXES: [&str; 6] = [
    "/api/authentication/",
    "/auth/verify/",
    "/api/keys/",
    "/oauth/",
    "/.well-known/",
    "/admin/",
];
const OWN_PATHS: [&str; 11] = [
    "/auth/verify",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/resource",
    "/admin",
    "/api/keys",
    "/oauth",
    "/.well-known",
    "/api/authentication",
];

/// Marks a response that came from the upstream (for the request log and metrics).
#[derive(Debug, Clone, Copy)]
pub struct Proxied;

/// The upstream service and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: axum::http::uri::Authority,
    timeout: Duration,
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    /// A client for `url` (`http://HOST:PORT`, no path) with `timeout` until response headers.
    pub fn new(url: &Uri, timeout: Duration) -> anyhow::Result<Self> {
        if url.scheme() != Some(&Scheme::HTTP) {
            anyhow::bail!(
                "the upstream must be an http:// URL (TLS to the upstream is not supported)"
            );
        }
        let Some(authority) = url.authority().cloned() else {
            anyhow::bail!("the upstream URL needs a host");
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            anyhow::bail!("the upstream URL may not have a path or query (http://HOST:PORT)");
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Upstream {
            scheme: Scheme::HTTP,
            authority,
            timeout,
            client,
        })
    }

    fn target(&self, original: &Uri) -> Result<Uri, ApiError> {
        let path_and_query = original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ApiError::invalid_request("the request URI cannot be forwarded"))
    }

    /// Sends `request` and waits (up to the timeout) for the response headers.
    async fn send(&self, request: Request) -> Result<Response<Body>, ApiError> {
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.map(Body::new)),
            Ok(Err(error)) => {
                tracing::warn!(%error, connect = error.is_connect(), "upstream unavailable");
                Err(ApiError::new(ErrorCode::UpstreamUnavailable))
            }
            Err(_) => {
                tracing::warn!(timeout_s = self.timeout.as_secs_f64(), "upstream timed out");
                Err(ApiError::new(ErrorCode::UpstreamTimeout))
            }
        }
    }
}

/// Whether `path` is one of assetpool's own routes (never forwarded).
pub fn is_own_path(path: &str) -> bool {
    OWN_PATHS.contains(&path) || OWN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// The router's fallback in reverse-proxy mode: check, then forward.
pub async fn forward(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response<Body>, ApiError> {
    let Some(upstream) = state.upstream.clone() else {
        return Err(ApiError::new(ErrorCode::NotFound));
    };
    if is_own_path(request.uri().path()) {
        return Err(ApiError::new(ErrorCode::NotFound));
    }
    let (mut parts, body) = request.into_parts();
    let verified = authenticate_request(&parts.headers, &parts.extensions, &state).await?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    let hop = Hop {
        peer,
        peer_trusted: state.trusted_proxies.contains(peer),
        https: parts.extensions.get::<Tls>().is_some(),
    };
    let upgrade = requested_upgrade(&parts.headers);
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<OnUpgrade>());
    parts.uri = upstream.target(&parts.uri)?;
    // Spoken to the upstream whatever the client spoke (as nginx's proxy_http_version 1.1).
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    remove_credentials_and_identity(headers);
    set_forwarded(headers, hop);
    headers.extend(identity_headers(&verified));
    if let Some(protocol) = &upgrade {
        keep_upgrade(headers, protocol.clone());
    }
    parts.extensions = axum::http::Extensions::new();
    let mut response = upstream.send(Request::from_parts(parts, body)).await?;
    let response_upgrade = requested_upgrade(response.headers());
    remove_hop_by_hop(response.headers_mut());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        match (client_upgrade, response_upgrade) {
            (Some(client_upgrade), Some(protocol)) => {
                keep_upgrade(response.headers_mut(), protocol);
                splice(client_upgrade, hyper::upgrade::on(&mut response));
            }
            _ => return Err(ApiError::new(ErrorCode::UpstreamUnavailable)),
        }
    }
    response.extensions_mut().insert(Proxied);
    Ok(response)
}

/// Once both sides have switched protocols, copies bytes both ways until either closes.
fn splice(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(error) => tracing::warn!(%error, "protocol upgrade through the proxy failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_are_never_forwarded() {
        for path in [
            "/api/authentication/login",
            "/api/keys/x",
            "/admin/users",
            "/oauth/token",
            "/.well-known/jwks.json",
            "/auth/verify",
            "/auth/verify/v2/things",
            "/metrics",
            "/admin",
        ] {
            assert!(is_own_path(path), "{path}");
        }
        for path in [
            "/",
            "/v2/things",
            "/auth/verifyx",
            "/api/other",
            "/metricsx",
        ] {
            assert!(!is_own_path(path), "{path}");
        }
    }

    #[test]
    fn only_plain_http_upstreams_without_path() {
        let timeout = Duration::from_secs(1);
        assert!(Upstream::new(&"http://127.0.0.1:9000".parse().unwrap(), timeout).is_ok());
        assert!(Upstream::new(&"https://127.0.0.1:9000".parse().unwrap(), timeout).is_err());
        assert!(Upstream::new(&"http://127.0.0.1:9000/x".parse().unwrap(), timeout).is_err());
    }
}
