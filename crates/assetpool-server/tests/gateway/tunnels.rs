//! WebSocket tunnels of reverse-proxy mode stay under the credentials and
//! limits they were opened with: logout, key revocation, user disable,
//! password change and token expiry close them within a second (on both
//! backends: revocations travel through storage's change feed); they hold a
//! connection slot for their whole life; idle and overlong ones are closed;
//! shutdown ends them.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestKey, PASSWORD};
use crate::scenarios::{logged_in, start_upstream_counting};
use assetpool_core::Environment;
use assetpool_server::ServerSettings;
use futures_util::{SinkExt as _, StreamExt as _};
use secrecy::SecretString;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// What the contract allows a revocation to take (docs/CONTRACT.md section 5).
pub const CONTRACT_SECOND: Duration = Duration::from_secs(1);
/// What a loaded (2-core, shared) machine may add to it: scheduling delays
/// of the server's tasks and of the test's own. Measured times are printed,
/// and above the contract's second said so.
const LOADED_MACHINE_MARGIN: Duration = Duration::from_millis(500);
/// How long a test waits for a close the contract bounds by one second.
pub const REVOCATION_LIMIT: Duration = CONTRACT_SECOND.saturating_add(LOADED_MACHINE_MARGIN);
/// How long a test waits for what follows a close but is no promise (the
/// upstream seeing its side closed, a shutdown's close).
const SETTLE: Duration = Duration::from_secs(5);

pub type Socket = WebSocketStream<TcpStream>;

pub async fn proxy_before(
    backend: Backend,
    upstream: SocketAddr,
    configure: impl FnOnce(&mut ServerSettings),
) -> TestApp {
    TestApp::spawn_with(backend, |settings| {
        settings.upstream = Some(format!("http://{upstream}").parse().unwrap());
        configure(settings);
    })
    .await
}

/// Opens a WebSocket to the upstream's `/ws` through `front` and reads the
/// upstream's greeting (the headers it received, as JSON).
pub async fn open_tunnel(front: &str, key: &str, token: &str) -> (Socket, Value) {
    let address = front.trim_start_matches("http://");
    let mut request = format!("ws://{address}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
        .headers_mut()
        .insert("x-api-token", token.parse().unwrap());
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    let greeting = socket.next().await.unwrap().unwrap().into_text().unwrap();
    (socket, serde_json::from_str(&greeting).unwrap())
}

/// One message there and back.
pub async fn assert_echoes(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an echo within 5 s")
        .expect("the tunnel is open")
        .expect("the tunnel is open");
    assert_eq!(echoed.into_text().unwrap().as_str(), text);
}

/// Waits until the gateway closes the tunnel (the client reads its end),
/// failing past `limit`; returns how long it took.
pub async fn closed_within(socket: &mut Socket, limit: Duration) -> Duration {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + limit);
    let took = loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("the tunnel was still open after {limit:?}"),
            Ok(None | Some(Err(_))) => break started.elapsed(),
            // Anything still in flight before the end.
            Ok(Some(Ok(_))) => {}
        }
    };
    if limit == REVOCATION_LIMIT && took > CONTRACT_SECOND {
        eprintln!("closed after {took:?}: over the contract's second (a loaded machine?)");
    }
    took
}

/// Waits until the upstream has `expected` WebSockets open, failing past `limit`.
async fn upstream_sockets(open: &crate::upstream::OpenSockets, expected: usize, limit: Duration) {
    let started = Instant::now();
    while open.count() != expected {
        assert!(
            started.elapsed() < limit,
            "the upstream still has {} WebSockets open, expected {expected}",
            open.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn login(app: &TestApp, key: &TestKey, email: &str, password: &str) -> String {
    let response = app.login(&key.key, email, password).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

backend_tests! {
    async fn logout_closes_the_tunnels_of_its_session(backend) {
        let (upstream, open) = start_upstream_counting().await;
        let app = proxy_before(backend, upstream, |_| {}).await;
        let (key, token) = logged_in(&app).await;
        let other_token = login(&app, &key, "alice@example.com", PASSWORD).await;
        let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
        let (mut other, _) = open_tunnel(&app.address, &key.key, &other_token).await;
        assert_echoes(&mut socket, "before logout").await;
        let logout = app
            .client
            .post(app.url("/api/authentication/logout"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after the logout ({backend:?})");
        // Both ways: the upstream's side is closed too; the other session's stays.
        upstream_sockets(&open, 1, SETTLE).await;
        assert_echoes(&mut other, "another session").await;
    }

    async fn revoking_the_key_closes_its_tunnels(backend) {
        let (upstream, open) = start_upstream_counting().await;
        let app = proxy_before(backend, upstream, |_| {}).await;
        let (key, token) = logged_in(&app).await;
        let (other_key, other_token) = logged_in(&app).await;
        let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
        let (mut other, _) = open_tunnel(&app.address, &other_key.key, &other_token).await;
        assert_echoes(&mut socket, "before revocation").await;
        // Revoked on the database, as the command line does: the server learns
        // it from the change feed.
        app.admin.revoke_api_key(&key.id, None).await.unwrap();
        let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after the key's revocation ({backend:?})");
        upstream_sockets(&open, 1, SETTLE).await;
        assert_echoes(&mut other, "another key").await;
    }

    async fn disabling_the_user_or_changing_the_password_closes_tunnels(backend) {
        let (upstream, open) = start_upstream_counting().await;
        let app = proxy_before(backend, upstream, |_| {}).await;
        let (key, token) = logged_in(&app).await;
        app.admin
            .create_user("bob@example.com", SecretString::from(PASSWORD), false)
            .await
            .unwrap();
        let bob = login(&app, &key, "bob@example.com", PASSWORD).await;
        let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
        let (mut bobs, _) = open_tunnel(&app.address, &key.key, &bob).await;
        app.admin.set_user_disabled("alice@example.com", true).await.unwrap();
        let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after its user's disable ({backend:?})");
        upstream_sockets(&open, 1, SETTLE).await;
        assert_echoes(&mut bobs, "bob is still here").await;

        let new_password = "another long passphrase 43";
        app.admin
            .set_password("bob@example.com", SecretString::from(new_password))
            .await
            .unwrap();
        let took = closed_within(&mut bobs, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after its user's password change ({backend:?})");
        upstream_sockets(&open, 0, SETTLE).await;
        // A new login with the new password opens a tunnel again.
        let bob = login(&app, &key, "bob@example.com", new_password).await;
        let (mut bobs, _) = open_tunnel(&app.address, &key.key, &bob).await;
        assert_echoes(&mut bobs, "back").await;
    }
}

#[tokio::test]
async fn the_token_expiring_closes_its_tunnel() {
    let (upstream, open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    assert_echoes(&mut socket, "before expiry").await;
    // The server's clock is the test's: the token (24 h) is now past its `exp`.
    app.clock.advance(chrono::Duration::hours(25));
    let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
    eprintln!("tunnel closed {took:?} after its token expired");
    upstream_sockets(&open, 0, SETTLE).await;
}

/// Whether a request sent on a fresh connection is answered within `wait`.
async fn served_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut first = [0_u8; 12];
    match tokio::time::timeout(wait, stream.read_exact(&mut first)).await {
        Err(_) => false,
        Ok(read) => {
            read.unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            true
        }
    }
}

#[tokio::test]
async fn tunnels_hold_their_connection_slot_until_they_end() {
    let (upstream, open) = start_upstream_counting().await;
    let mut app = proxy_before(Backend::Sqlite, upstream, |settings| {
        settings.listener.max_connections = 2;
    })
    .await;
    // No idle keep-alive connections of the test's own client hold slots.
    app.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (key, token) = logged_in(&app).await;
    let (mut first, _) = open_tunnel(&app.address, &key.key, &token).await;
    let (mut second, _) = open_tunnel(&app.address, &key.key, &token).await;
    assert_echoes(&mut first, "one").await;
    assert_echoes(&mut second, "two").await;

    // A third connection waits (in the kernel's accept queue) while both tunnels are open.
    let address = app.address.trim_start_matches("http://");
    let mut third = TcpStream::connect(address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        !served_within(&mut third, Duration::from_millis(1500)).await,
        "a third connection was served while two tunnels held both slots"
    );
    // Once a tunnel ends, its slot serves the waiting connection.
    first.close(None).await.unwrap();
    drop(first);
    assert!(served_within(&mut third, Duration::from_secs(5)).await);
    assert_echoes(&mut second, "still open").await;
    upstream_sockets(&open, 1, SETTLE).await;
}

#[tokio::test]
async fn idle_tunnels_are_closed_and_busy_ones_kept() {
    let idle_timeout = Duration::from_secs(2);
    let (upstream, open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |settings| {
        settings.tunnels.idle_timeout = idle_timeout;
    })
    .await;
    let (key, token) = logged_in(&app).await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    // Traffic every 200 ms (a tenth of the idle timeout) for longer than the
    // idle timeout keeps it open...
    let busy_until = Instant::now() + idle_timeout + Duration::from_secs(1);
    let mut last_message = Instant::now();
    while Instant::now() < busy_until {
        assert_echoes(&mut socket, "busy").await;
        last_message = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...then the idle timeout without any closes it.
    closed_within(&mut socket, idle_timeout + SETTLE).await;
    let quiet = last_message.elapsed();
    eprintln!("an idle tunnel was closed {quiet:?} after its last message");
    assert!(
        quiet >= idle_timeout - Duration::from_millis(250),
        "closed early: {quiet:?}"
    );
    upstream_sockets(&open, 0, SETTLE).await;
}

#[tokio::test]
async fn no_tunnel_outlives_its_maximum_lifetime() {
    let (upstream, open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |settings| {
        settings.tunnels.max_lifetime = Duration::from_secs(2);
    })
    .await;
    let (key, token) = logged_in(&app).await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    let started = Instant::now();
    let ended = loop {
        socket.send(Message::text("busy")).await.ok();
        let read = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;
        if let Ok(None | Some(Err(_))) = read {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2) + SETTLE,
            "a busy tunnel outlived its 2 s lifetime"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("a busy tunnel with a 2 s lifetime ended after {ended:?}");
    assert!(
        ended >= Duration::from_millis(1500),
        "closed early: {ended:?}"
    );
    upstream_sockets(&open, 0, SETTLE).await;
}

#[tokio::test]
async fn shutdown_closes_open_tunnels() {
    let (upstream, open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    assert_echoes(&mut socket, "before shutdown").await;
    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("the server stops with a tunnel open");
    closed_within(&mut socket, SETTLE).await;
    upstream_sockets(&open, 0, SETTLE).await;
}

#[tokio::test]
async fn a_second_key_of_the_application_does_not_keep_a_revoked_keys_tunnel() {
    // Tokens are bound to the application: another live key of the same
    // application does not keep open a tunnel opened with the revoked one.
    let (upstream, _open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let _sibling = app
        .create_key_in(Environment::Production, Some(&key.application))
        .await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    app.admin.revoke_api_key(&key.id, None).await.unwrap();
    let took = closed_within(&mut socket, REVOCATION_LIMIT).await;
    eprintln!("tunnel closed {took:?} after its key's revocation, with a sibling key alive");
}
