//! The listener's limits over raw TCP: slow request heads (slowloris), the
//! connection cap, idle keep-alive connections and request-head sizes.

use crate::helpers::{Backend, TestApp, PASSWORD};
use assetpool_core::Environment;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn socket_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(socket_address(app)).await.unwrap()
}

/// Reads one response (head and a `Content-Length` body): (status, head, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed before a response head");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed within a response body");
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    (status, head, body)
}

/// Waits (at most `limit`) for the server to close the connection.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0_u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, closed).await.is_ok()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: assetpool\r\n\r\n";

#[tokio::test]
async fn slow_request_heads_do_not_keep_others_out_and_are_closed_at_the_header_timeout() {
    const SLOW: usize = 200;
    const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.listener.header_read_timeout = HEADER_READ_TIMEOUT;
    })
    .await;
    let key = app.create_key(Environment::Production).await;
    app.create_user("alice@example.com").await;

    // 200 connections, each sending a request head one byte per 500 ms.
    let head: &'static [u8] =
        b"POST /api/authentication/login HTTP/1.1\r\nHost: assetpool\r\nContent-Type: application/json\r\n\r\n";
    let closed_at: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    let started = Instant::now();
    for _ in 0..SLOW {
        let stream = connect(&app).await;
        let opened = Instant::now();
        let (mut reader, mut writer) = stream.into_split();
        let closed_at = closed_at.clone();
        tokio::spawn(async move {
            let mut chunk = [0_u8; 256];
            loop {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            closed_at.lock().unwrap().push(opened.elapsed());
        });
        writers.push(tokio::spawn(async move {
            for byte in head {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    let connected = started.elapsed();

    // Meanwhile an ordinary client logs in at once.
    let login_started = Instant::now();
    let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
    let login_took = login_started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(
        login_took < Duration::from_secs(2),
        "login took {login_took:?} with {SLOW} slow connections open"
    );
    assert!(
        closed_at.lock().unwrap().is_empty(),
        "slow connections were closed before the header timeout (connecting took {connected:?})"
    );

    // After the header timeout the server closes every slow connection.
    let deadline = Instant::now() + HEADER_READ_TIMEOUT + Duration::from_secs(5);
    while closed_at.lock().unwrap().len() < SLOW && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed = closed_at.lock().unwrap().clone();
    assert_eq!(closed.len(), SLOW, "not every slow connection was closed");
    eprintln!(
        "slowloris: {SLOW} slow connections opened in {connected:?}; login took {login_took:?}; \
         closed after {:?} to {:?}",
        closed.iter().min().unwrap(),
        closed.iter().max().unwrap()
    );
    for after in closed {
        assert!(
            after >= HEADER_READ_TIMEOUT - Duration::from_millis(50),
            "a slow connection was closed after only {after:?}"
        );
    }
    for writer in writers {
        writer.abort();
    }
    // The server still answers.
    let mut stream = connect(&app).await;
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.listener.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut silent = connect(&app).await;
    let opened = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(opened.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.listener.max_connections = 5;
        settings.listener.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..5 {
        let mut stream = connect(&app).await;
        stream.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await.0, 200);
        open.push(stream);
    }
    // The sixth connection is taken by the kernel but not served.
    let mut sixth = connect(&app).await;
    sixth.write_all(HEALTHZ).await.unwrap();
    let mut byte = [0_u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(700), sixth.read(&mut byte))
            .await
            .is_err(),
        "the sixth connection was served while five were open"
    );
    // Once one closes, it is served.
    drop(open.pop());
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut sixth))
        .await
        .expect("the sixth connection is served once a slot is free");
    assert_eq!(status, 200);
    // The five open connections still work (keep-alive).
    for stream in &mut open {
        stream.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(stream).await.0, 200);
    }
}

/// A server with these head and keep-alive timeouts (seconds).
async fn app_with_timeouts(header_read: u64, keep_alive: u64) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.listener.header_read_timeout = Duration::from_secs(header_read);
        settings.listener.keep_alive_timeout = Duration::from_secs(keep_alive);
    })
    .await
}

/// Sends `/healthz` on `stream` and checks the 200.
async fn healthz_answered(stream: &mut TcpStream) {
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(stream).await.0, 200);
}

/// Checks that `stream` is closed between `at_least` and `below` after `since`.
async fn closed_between(
    stream: &mut TcpStream,
    since: Instant,
    at_least: Duration,
    below: Duration,
) {
    assert!(closed_within(stream, Duration::from_secs(8)).await);
    let elapsed = since.elapsed();
    assert!(
        elapsed >= at_least && elapsed < below,
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_outlive_the_header_timeout_until_the_keep_alive_timeout() {
    let app = app_with_timeouts(1, 3).await;
    let mut stream = connect(&app).await;
    healthz_answered(&mut stream).await;
    // Idle for longer than the header timeout: still open, still served.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    healthz_answered(&mut stream).await;
    // Idle past the keep-alive timeout: closed.
    let idle_since = Instant::now();
    closed_between(
        &mut stream,
        idle_since,
        Duration::from_millis(2900),
        Duration::from_secs(8),
    )
    .await;
}

#[tokio::test]
async fn a_keep_alive_timeout_shorter_than_the_header_timeout_closes_idle_connections_on_time() {
    let app = app_with_timeouts(4, 1).await;
    let mut stream = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthz_answered(&mut stream).await;
    // Idle after an answer: closed at the keep-alive timeout, not at the
    // longer header timeout.
    let idle_since = Instant::now();
    closed_between(
        &mut stream,
        idle_since,
        Duration::from_millis(900),
        Duration::from_millis(2500),
    )
    .await;
}

#[tokio::test]
async fn a_request_head_started_on_a_kept_alive_connection_has_the_header_timeout() {
    let app = app_with_timeouts(1, 60).await;
    let mut stream = connect(&app).await;
    healthz_answered(&mut stream).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    closed_between(
        &mut stream,
        started,
        Duration::from_millis(950),
        Duration::from_millis(2500),
    )
    .await;
}

fn request_with_headers(count: usize, value_len: usize) -> Vec<u8> {
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: assetpool\r\n");
    let value = "v".repeat(value_len);
    for index in 0..count {
        request.push_str(&format!("x-filler-{index}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

async fn status_of(app: &TestApp, request: &[u8]) -> u16 {
    let mut stream = connect(app).await;
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await.0
}

#[tokio::test]
async fn request_heads_over_the_size_limit_get_431() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Default limit: 16 KiB of request head.
    assert_eq!(status_of(&app, &request_with_headers(10, 1500)).await, 200);
    assert_eq!(status_of(&app, &request_with_headers(10, 1700)).await, 431);
    let mut stream = connect(&app).await;
    stream
        .write_all(&request_with_headers(1, 17 * 1024))
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut stream).await;
    assert_eq!(status, 431);
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);

    let small = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.listener.max_header_size = 2048;
    })
    .await;
    assert_eq!(status_of(&small, &request_with_headers(1, 1500)).await, 200);
    assert_eq!(status_of(&small, &request_with_headers(1, 2100)).await, 431);
}

#[tokio::test]
async fn requests_over_the_header_count_get_431() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Default: 100 headers, Host included.
    assert_eq!(status_of(&app, &request_with_headers(99, 4)).await, 200);
    assert_eq!(status_of(&app, &request_with_headers(100, 4)).await, 431);

    let few = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.listener.max_headers = 10;
    })
    .await;
    assert_eq!(status_of(&few, &request_with_headers(9, 4)).await, 200);
    assert_eq!(status_of(&few, &request_with_headers(10, 4)).await, 431);
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_answered_408_not_stored() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.request_timeout = Duration::from_millis(1);
    })
    .await;
    let key = app.create_key(Environment::Production).await;
    app.create_user("alice@example.com").await;
    // A login waits for Argon2id (milliseconds): past the limit.
    let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
    assert_eq!(response.status(), 408);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "request_timeout", "{body}");
}
