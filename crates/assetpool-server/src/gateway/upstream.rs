//! The upstream of reverse-proxy mode (`serve --upstream URL`): its address,
//! hyper-util's pooled client that reaches it, with the timeout until response
//! headers, and the WebSocket tunnels open to it.

use super::route_scopes::RouteScopes;
use super::tunnel::Tunnels;
use crate::error::ApiError;
use crate::settings::TunnelSettings;
use assetpool_wire::ErrorCode;
use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Scheme};
use axum::http::{Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// The upstream service, the client that reaches it and the open tunnels to it.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: axum::http::uri::Authority,
    timeout: Duration,
    client: Client<HttpConnector, Body>,
    tunnels: Arc<Tunnels>,
    route_scopes: Arc<RouteScopes>,
}

impl Upstream {
    /// A client for `url` (`http://HOST:PORT`, no path) with `timeout` until
    /// response headers, and WebSocket tunnels within `tunnels`.
    pub fn new(url: &Uri, timeout: Duration, tunnels: TunnelSettings) -> anyhow::Result<Self> {
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
            tunnels: Arc::new(Tunnels::new(tunnels)),
            route_scopes: Arc::new(RouteScopes::default()),
        })
    }

    /// The same upstream, with the scopes forwarded requests need (`--route-scope`).
    #[must_use]
    pub fn with_route_scopes(mut self, route_scopes: RouteScopes) -> Self {
        self.route_scopes = Arc::new(route_scopes);
        self
    }

    /// The scopes forwarded requests need.
    pub fn route_scopes(&self) -> &RouteScopes {
        &self.route_scopes
    }

    /// The upstream's URI for a request to `original`.
    pub(super) fn target(&self, original: &Uri) -> Result<Uri, ApiError> {
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
    pub(super) async fn send(&self, request: Request) -> Result<Response<Body>, ApiError> {
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

    /// The open WebSocket tunnels to the upstream.
    pub(super) fn tunnels(&self) -> &Arc<Tunnels> {
        &self.tunnels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_upstreams_without_path() {
        let timeout = Duration::from_secs(1);
        let upstream =
            |url: &str| Upstream::new(&url.parse().unwrap(), timeout, TunnelSettings::default());
        assert!(upstream("http://127.0.0.1:9000").is_ok());
        assert!(upstream("https://127.0.0.1:9000").is_err());
        assert!(upstream("http://127.0.0.1:9000/x").is_err());
    }
}
