//! A tiny upstream service for the gateway tests and `bench/gateway.sh`
//! (built as the `echo_upstream` example from this same file).
//!
//! - any path: echoes method, path, query, received headers and body length
//!   as JSON, with its own `Cache-Control: public, max-age=60`;
//! - `GET /download/{bytes}`: streams that many bytes, 64 KiB at a time;
//! - `POST /upload`: reads the body as a stream, answers `{"received": BYTES}`;
//! - `GET /drip/{chunks}`: one chunk every 100 ms (a slow streaming answer);
//! - any method on `/sleep/{millis}`: waits, then echoes;
//! - `GET /plain`: a short fixed answer (for the benchmark);
//! - `GET /cookies`: sets a cookie of its own and tries to set the web
//!   console's (which the reverse proxy drops);
//! - `GET /ws`: a WebSocket that first sends the received headers as JSON,
//!   then echoes every message (handshakes received and open sockets are
//!   counted, see [`OpenSockets`]).

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// The number of the upstream's WebSocket connections still open (the
/// upstream's side of a tunnel: it drops when the connection is gone), and
/// of the WebSocket handshakes it has received.
#[derive(Debug, Clone, Default)]
pub struct OpenSockets {
    open: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
}

impl OpenSockets {
    /// WebSockets open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// WebSocket handshakes received so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

/// Counts one open WebSocket until dropped.
struct OpenSocket(OpenSockets);

impl OpenSocket {
    fn new(open: OpenSockets) -> Self {
        open.open.fetch_add(1, Ordering::SeqCst);
        OpenSocket(open)
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The upstream's routes.
pub fn router() -> Router {
    router_counting(OpenSockets::default())
}

/// The upstream's routes, counting open WebSockets in `open`.
pub fn router_counting(open: OpenSockets) -> Router {
    Router::new()
        .route("/download/{bytes}", get(download))
        .route("/upload", post(upload))
        .route("/drip/{chunks}", get(drip))
        .route("/sleep/{millis}", any(sleep_then_echo))
        .route("/plain", get(|| async { "ok" }))
        .route("/cookies", get(set_cookies))
        .route(
            "/ws",
            get(move |upgrade, headers| websocket(upgrade, headers, open.clone())),
        )
        .fallback(echo)
}

/// Serves the upstream on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

/// Every header as `name: [values]`.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|value| Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        map.insert(name.as_str().to_owned(), Value::Array(values));
    }
    Value::Object(map)
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = headers_json(&parts.headers);
    let body_length = count(body).await;
    let mut response = Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "bodyLength": body_length,
    }))
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

async fn set_cookies() -> Response {
    let mut response = "cookies".into_response();
    for line in [
        "upstream_session=u1; Path=/; HttpOnly",
        "__Host-assetpool_console=apc_planted; Path=/; Secure; HttpOnly",
        "assetpool_console=apc_planted; Path=/console",
        "Assetpool_Console_Sign_In=t; Path=/console",
    ] {
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_static(line));
    }
    response
}

async fn count(body: Body) -> u64 {
    let mut stream = body.into_data_stream();
    let mut received = 0_u64;
    while let Some(Ok(chunk)) = stream.next().await {
        received += chunk.len() as u64;
    }
    received
}

async fn download(Path(bytes): Path<u64>) -> Response {
    let stream = futures_util::stream::unfold(bytes, |left| async move {
        if left == 0 {
            return None;
        }
        let size = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        let chunk = Bytes::from_static(&ZEROS[..size]);
        Some((Ok::<_, std::io::Error>(chunk), left - size as u64))
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn upload(request: Request) -> Json<Value> {
    Json(json!({ "received": count(request.into_body()).await }))
}

async fn drip(Path(chunks): Path<u32>) -> Response {
    let stream = futures_util::stream::unfold(chunks, |left| async move {
        if left == 0 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(b"drip\n")),
            left - 1,
        ))
    });
    Body::from_stream(stream).into_response()
}

async fn websocket(upgrade: WebSocketUpgrade, headers: HeaderMap, open: OpenSockets) -> Response {
    open.handshakes.fetch_add(1, Ordering::SeqCst);
    let greeting = json!({ "headers": headers_json(&headers) }).to_string();
    upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        let _open = OpenSocket::new(open);
        if socket.send(Message::Text(greeting.into())).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) || socket.send(message).await.is_err() {
                break;
            }
        }
    })
}

async fn sleep_then_echo(Path(millis): Path<u64>, request: Request) -> Response {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    echo(request).await
}
