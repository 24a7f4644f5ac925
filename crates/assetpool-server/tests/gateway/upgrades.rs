//! Which protocol upgrades reverse-proxy mode tunnels: only WebSocket, asked
//! by the client with `GET` and answered by the upstream. Any other `Upgrade`
//! (`h2c`, `foo`, ...) is forwarded as a plain request without it; a
//! WebSocket upgrade with another method, and `CONNECT`, are refused with
//! 405 before the upstream; a `101` the upstream sends for anything else
//! never becomes a tunnel.
//!
//! The upstream here is raw HTTP/1.1, written to switch protocols whenever it
//! can, as a lax upstream would.

use crate::helpers::Backend;
use crate::scenarios::logged_in;
use crate::tunnels::proxy_before;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the raw upstream answers.
#[derive(Debug, Clone, Copy)]
pub enum Switch {
    /// 101 with the request's own `Upgrade` when it has one; otherwise 200
    /// with the request head it received as the body.
    AsAsked,
    /// 101 with this `Upgrade`, whatever the request.
    Always(&'static str),
}

/// Reads up to the end of an HTTP head (`\r\n\r\n`); the head as text.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.unwrap();
        head.push(byte);
        assert!(head.len() < 64 * 1024, "head too long");
    }
    String::from_utf8(head).unwrap()
}

/// The value of header `name` in a head, if any.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

async fn answer(mut stream: TcpStream, switch: Switch) {
    let head = read_head(&mut stream).await;
    let protocol = match switch {
        Switch::AsAsked => header(&head, "upgrade").map(str::to_owned),
        Switch::Always(protocol) => Some(protocol.to_owned()),
    };
    let Some(protocol) = protocol else {
        let answer = format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{head}",
            head.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        return;
    };
    let switched = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {protocol}\r\n\r\n"
    );
    if stream.write_all(switched.as_bytes()).await.is_err() {
        return;
    }
    // Echo whatever the other protocol sends.
    let (mut reader, mut writer) = stream.split();
    let _ = tokio::io::copy(&mut reader, &mut writer).await;
}

pub async fn start_raw_upstream(switch: Switch) -> SocketAddr {
    start_raw_upstream_counting(switch).await.0
}

/// A raw upstream, and the number of connections it has accepted.
pub async fn start_raw_upstream_counting(switch: Switch) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, switch));
        }
    });
    (address, accepted)
}

/// Sends a GET with credentials and `extra` header lines; (status, head, body, stream).
pub async fn exchange(
    front: &str,
    credentials: (&str, &str),
    extra: &str,
) -> (u16, String, String, TcpStream) {
    exchange_as(front, "GET /any/path", credentials, extra).await
}

/// Sends `request_line` (method and target) with credentials and `extra`
/// header lines; (status, head, body, stream).
pub async fn exchange_as(
    front: &str,
    request_line: &str,
    credentials: (&str, &str),
    extra: &str,
) -> (u16, String, String, TcpStream) {
    let address = front.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nhost: {address}\r\nx-api-key: {}\r\nx-api-token: {}\r\n{extra}\r\n",
        credentials.0, credentials.1
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    let status: u16 = head[9..12].parse().unwrap();
    let mut body = String::new();
    if status != 101 {
        let length: usize = header(&head, "content-length").unwrap().parse().unwrap();
        let mut bytes = vec![0_u8; length];
        stream.read_exact(&mut bytes).await.unwrap();
        body = String::from_utf8(bytes).unwrap();
    }
    (status, head, body, stream)
}

/// Bytes sent into an open tunnel come back from the echoing upstream.
pub async fn assert_tunnel_echoes(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    stream.write_all(b"raw bytes").await.unwrap();
    let mut echoed = [0_u8; 9];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"raw bytes");
}

#[tokio::test]
async fn only_websocket_upgrades_are_tunnelled() {
    let upstream = start_raw_upstream(Switch::AsAsked).await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let credentials = (key.key.as_str(), token.as_str());
    only_websocket_is_tunnelled(&app.address, credentials).await;
}

/// Through `front` (before a [`Switch::AsAsked`] upstream): other upgrades
/// arrive as plain requests without `Upgrade`; a WebSocket one is tunnelled.
pub async fn only_websocket_is_tunnelled(front: &str, credentials: (&str, &str)) {
    let others = [
        "connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        "connection: upgrade\r\nupgrade: foo\r\n",
        "connection: upgrade\r\nupgrade: TLS/1.2\r\n",
        "connection: upgrade\r\nupgrade: websocket, h2c\r\n",
        "connection: keep-alive, Upgrade\r\nupgrade: websocketx\r\n",
    ];
    for extra in others {
        let (status, head, seen, _) = exchange(front, credentials, extra).await;
        // Forwarded as a plain request, without the upgrade.
        assert_eq!(status, 200, "{extra:?} got {head}");
        let seen = seen.to_ascii_lowercase();
        assert!(seen.starts_with("get /any/path http/1.1"), "{seen}");
        for gone in ["upgrade", "http2-settings"] {
            assert!(!seen.contains(gone), "{gone} reached the upstream: {seen}");
        }
    }
    // WebSocket, in any case, is tunnelled.
    let (status, head, _, mut tunnel) = exchange(
        front,
        credentials,
        "connection: Upgrade\r\nupgrade: WebSocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    assert_eq!(status, 101, "{head}");
    assert!(header(&head, "upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert_tunnel_echoes(&mut tunnel).await;
}

#[tokio::test]
async fn a_101_becomes_a_tunnel_only_for_a_websocket_asked_and_answered() {
    let websocket_anyway = start_raw_upstream(Switch::Always("websocket")).await;
    let app = proxy_before(Backend::Sqlite, websocket_anyway, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let credentials = (key.key.as_str(), token.as_str());
    for extra in [
        "connection: upgrade\r\nupgrade: foo\r\n",
        "connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        "",
    ] {
        let (status, head, body, _) = exchange(&app.address, credentials, extra).await;
        assert_eq!(status, 502, "{extra:?} got {head}");
        assert!(body.contains("upstream_unavailable"), "{body}");
    }

    let h2c_answer = start_raw_upstream(Switch::Always("h2c")).await;
    let app = proxy_before(Backend::Sqlite, h2c_answer, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let (status, head, body, _) = exchange(
        &app.address,
        (&key.key, &token),
        "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    assert_eq!(status, 502, "{head}");
    assert!(body.contains("upstream_unavailable"), "{body}");
}

#[tokio::test]
async fn an_upgrade_is_checked_like_any_request() {
    let upstream = start_raw_upstream(Switch::AsAsked).await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, _) = logged_in(&app).await;
    let (status, _, body, _) = exchange(
        &app.address,
        (&key.key, "not.a.token"),
        "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_token"), "{body}");
}

#[tokio::test]
async fn connect_and_websocket_upgrades_with_another_method_are_refused() {
    let (upstream, accepted) = start_raw_upstream_counting(Switch::AsAsked).await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let credentials = (key.key.as_str(), token.as_str());
    let websocket = "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let connect_line = format!("CONNECT {upstream}");
    let refused = [
        (connect_line.as_str(), ""),
        ("CONNECT /any/path", ""),
        ("POST /any/path", websocket),
        ("PUT /any/path", websocket),
        ("DELETE /any/path", websocket),
    ];
    for (request_line, extra) in refused {
        let extra = format!("{extra}content-length: 0\r\n");
        let (status, head, body, _) =
            exchange_as(&app.address, request_line, credentials, &extra).await;
        assert_eq!(status, 405, "{request_line} got {head}");
        assert!(
            body.contains("method_not_allowed"),
            "{request_line}: {body}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a refused request reached the upstream"
    );
    // The same upgrade with GET is tunnelled; other methods without it pass.
    let (status, head, _, mut tunnel) = exchange(&app.address, credentials, websocket).await;
    assert_eq!(status, 101, "{head}");
    assert_tunnel_echoes(&mut tunnel).await;
    let (status, head, _, _) = exchange_as(
        &app.address,
        "POST /any/path",
        credentials,
        "content-length: 0\r\n",
    )
    .await;
    assert_eq!(status, 200, "{head}");
}
