//! Reverse-proxy mode (`serve --upstream URL`): every request outside
//! assetpool's own routes is checked like a protected endpoint, then forwarded
//! to the upstream with hyper-util's client.
//!
//! Bodies stream both ways (nothing is buffered whole, and the 16 KiB limit of
//! assetpool's own endpoints does not apply). The upstream timeout covers the
//! time until the upstream's response headers arrive; the body then streams
//! for as long as it takes.
//!
//! Request trailer fields are dropped: they could carry any name, and the
//! upstream must see only the head assetpool checked and rewrote.
//!
//! Upgrades: only WebSocket (`GET` with `Connection: upgrade` and
//! `Upgrade: websocket`) is passed on, within the tunnel caps (a refused
//! one never reaches the upstream); once the upstream answers it with 101
//! and `Upgrade: websocket`, the two connections become a
//! [`tunnel`](super::tunnel), which ends with its credentials and limits.
//! `CONNECT` (a tunnel to anywhere) and a WebSocket upgrade with another
//! method than `GET` (RFC 6455 section 4.1) are refused with 405 before
//! anything else. Any other `Upgrade` (`h2c`, `TLS/1.2`, ...) is dropped
//! with the other hop-by-hop headers and the request forwarded as a plain
//! one: RFC 9110 section 7.8 lets a server ignore `Upgrade`, and a client
//! that offers one (curl offers `h2c`) then simply goes on in HTTP/1.1, as
//! behind nginx, which passes `Upgrade` only when configured to. Refusing
//! such requests would break those clients for no gain; tunnelling them
//! would hand the client a channel assetpool cannot read (an h2c connection
//! could carry further requests, and identity headers, past the check). A
//! 101 for anything but the WebSocket upgrade the client asked for is a 502.

use super::headers::{
    is_websocket_upgrade, keep_websocket_upgrade, remove_console_cookies,
    remove_console_set_cookies, remove_credentials_and_identity, remove_hop_by_hop, set_forwarded,
    Hop,
};
use super::insert_identity_headers;
use super::tunnel::{TunnelLimit, TunnelRequest};
use super::upstream::Upstream;
use crate::error::ApiError;
use crate::extract::authenticate_request;
use crate::listener::{ConnectionLease, Tls};
use crate::state::AppState;
use assetpool_core::service::Verified;
use assetpool_wire::ErrorCode;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, Response, StatusCode, Version};
use axum::response::IntoResponse as _;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::upgrade::OnUpgrade;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Seconds a client refused by a tunnel cap is asked to wait: places free
/// only as tunnels end, which takes a while.
const TUNNEL_RETRY_AFTER_SECONDS: u32 = 5;

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
    refuse_unforwardable_method(&request)?;
    let (mut parts, body) = request.into_parts();
    let verified = authenticate_request(&parts.headers, &parts.extensions, &state).await?;
    let required = upstream
        .route_scopes()
        .requirement(&parts.method, parts.uri.path());
    if let Some(required) = &required {
        if !verified.scopes().satisfies(required) {
            return Err(ApiError::insufficient_scope(required));
        }
    }
    let websocket = match take_websocket_upgrade(&mut parts) {
        Some((client, lease)) => {
            let key_id = &verified.key.record.id;
            match upstream.tunnels().reserve(key_id, &state.metrics) {
                Ok(place) => Some((client, lease, place)),
                Err(limit) => return Ok(tunnel_refusal(limit)),
            }
        }
        None => None,
    };
    prepare(
        &mut parts,
        &state,
        &upstream,
        &verified,
        websocket.is_some(),
    )?;
    let body = Body::new(WithoutTrailers(body));
    let mut response = upstream.send(Request::from_parts(parts, body)).await?;
    let answered_websocket = is_websocket_upgrade(response.headers());
    remove_hop_by_hop(response.headers_mut());
    remove_console_set_cookies(response.headers_mut());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some((client, lease, place)) = websocket.filter(|_| answered_websocket) else {
            tracing::warn!(
                "the upstream switched protocols without a WebSocket upgrade asked and accepted"
            );
            return Err(ApiError::new(ErrorCode::UpstreamUnavailable));
        };
        keep_websocket_upgrade(response.headers_mut());
        let tunnel = TunnelRequest {
            verified,
            required,
            client,
            upstream: hyper::upgrade::on(&mut response),
            lease,
            place,
        };
        upstream.tunnels().open(&state.service, tunnel);
    }
    response.extensions_mut().insert(Proxied);
    Ok(response)
}

/// `CONNECT` (a tunnel to any address) is never forwarded, nor a WebSocket
/// upgrade with another method than `GET` (RFC 6455 section 4.1): 405, as
/// any request the upstream is not to see, before the credentials are read.
fn refuse_unforwardable_method(request: &Request) -> Result<(), ApiError> {
    let method = request.method();
    let websocket_not_get = method != Method::GET && is_websocket_upgrade(request.headers());
    if method == Method::CONNECT || websocket_not_get {
        return Err(ApiError::with_message(
            ErrorCode::MethodNotAllowed,
            "CONNECT, and WebSocket upgrades with another method than GET, are not forwarded",
        ));
    }
    Ok(())
}

/// The answer to a WebSocket upgrade beyond a tunnel cap
/// ([`TunnelLimit::code`]), with `Retry-After`.
fn tunnel_refusal(limit: TunnelLimit) -> Response<Body> {
    let message = match limit {
        TunnelLimit::Server => {
            "the server has as many WebSocket tunnels open as it may; retry later"
        }
        TunnelLimit::Key => {
            "this API key has as many WebSocket tunnels open as it may; close one or retry later"
        }
    };
    let mut response = ApiError::with_message(limit.code(), message).into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(TUNNEL_RETRY_AFTER_SECONDS),
    );
    response
}

/// For a WebSocket upgrade request that hyper can hand over: the client's
/// side of the upgrade and its connection lease. `None` for anything else,
/// which is then forwarded without its `Upgrade`.
fn take_websocket_upgrade(parts: &mut Parts) -> Option<(OnUpgrade, Option<ConnectionLease>)> {
    if parts.method != Method::GET || !is_websocket_upgrade(&parts.headers) {
        return None;
    }
    let client = parts.extensions.remove::<OnUpgrade>()?;
    Some((client, parts.extensions.remove::<ConnectionLease>()))
}

/// A request body passed on without its trailer fields: the upstream gets
/// the data only (hyper would send only trailers announced by `Trailer`,
/// which [`remove_hop_by_hop`] removes; this does not rely on that).
struct WithoutTrailers(Body);

impl HttpBody for WithoutTrailers {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        loop {
            match Pin::new(&mut self.0).poll_frame(context) {
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {}
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Turns the client's request head into the upstream's: target URI,
/// HTTP/1.1, no hop-by-hop headers (the WebSocket upgrade put back when
/// `websocket`), no credentials, client-sent identity or console cookies,
/// `X-Forwarded-*` and the identity headers set.
fn prepare(
    parts: &mut Parts,
    state: &AppState,
    upstream: &Upstream,
    verified: &Verified,
    websocket: bool,
) -> Result<(), ApiError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    let hop = Hop {
        peer,
        peer_trusted: state.trusted_proxies.contains(peer),
        https: parts.extensions.get::<Tls>().is_some(),
    };
    parts.uri = upstream.target(&parts.uri)?;
    // Spoken to the upstream whatever the client spoke (as nginx's proxy_http_version 1.1).
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    remove_credentials_and_identity(headers);
    remove_console_cookies(headers);
    set_forwarded(headers, hop);
    insert_identity_headers(headers, verified);
    if websocket {
        keep_websocket_upgrade(headers);
    }
    parts.extensions = axum::http::Extensions::new();
    Ok(())
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
}
