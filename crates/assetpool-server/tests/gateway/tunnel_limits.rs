//! Caps on WebSocket tunnels: one credential cannot take every connection
//! of the server with tunnels. Beyond `--max-tunnels` open on the server,
//! an upgrade is refused with 503 `overloaded`; beyond
//! `--max-tunnels-per-key` of one API key, with 429 `rate_limited`; both
//! with `Retry-After`, before anything reaches the upstream, and counted in
//! `/metrics`. Plain requests are served all the while, and a tunnel that
//! ends frees its place.

use crate::helpers::{Backend, TestApp};
use crate::scenarios::{logged_in, start_upstream_counting};
use crate::tunnels::{assert_echoes, open_tunnel, proxy_before};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Error;

/// A WebSocket handshake refused by the gateway: its status, `Retry-After`
/// and JSON body.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

/// Tries a WebSocket handshake through `front`: `Ok` when it was accepted
/// (the socket is closed again), the refusal otherwise.
pub async fn try_tunnel(front: &str, key: &str, token: &str) -> Result<(), Refusal> {
    let address = front.trim_start_matches("http://");
    let mut request = format!("ws://{address}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
        .headers_mut()
        .insert("x-api-token", token.parse().unwrap());
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((mut socket, _)) => {
            socket.close(None).await.ok();
            Ok(())
        }
        Err(Error::Http(response)) => Err(Refusal {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().parse().unwrap()),
            body: serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                .unwrap_or(Value::Null),
        }),
        Err(other) => panic!("the handshake failed: {other}"),
    }
}

/// Asserts the handshake is refused with `status` and `code`, and `Retry-After`.
pub async fn assert_refused(front: &str, key: &str, token: &str, status: u16, code: &str) {
    let refusal = try_tunnel(front, key, token)
        .await
        .expect_err("a tunnel beyond the cap was opened");
    assert_eq!(refusal.status, status, "{refusal:?}");
    assert_eq!(refusal.body["error"], code, "{refusal:?}");
    assert!(
        refusal.retry_after.is_some_and(|seconds| seconds >= 1),
        "{refusal:?}"
    );
}

/// The value of the sample `name` (with its labels) in `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn tunnels_beyond_the_server_and_key_caps_are_refused_before_the_upstream() {
    let (upstream, open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |settings| {
        settings.tunnels.max_open = 3;
        settings.tunnels.max_per_key = 2;
    })
    .await;
    let (key, token) = logged_in(&app).await;
    let (other_key, other_token) = logged_in(&app).await;
    let (mut first, _) = open_tunnel(&app.address, &key.key, &token).await;
    let (mut second, _) = open_tunnel(&app.address, &key.key, &token).await;
    // The key has its two: a third is the key's own excess.
    assert_refused(&app.address, &key.key, &token, 429, "rate_limited").await;
    // Another key still gets one, and the server has its three.
    let (mut third, _) = open_tunnel(&app.address, &other_key.key, &other_token).await;
    assert_refused(
        &app.address,
        &other_key.key,
        &other_token,
        503,
        "overloaded",
    )
    .await;
    assert_refused(&app.address, &key.key, &token, 503, "overloaded").await;
    // Nothing of the refused handshakes reached the upstream.
    assert_eq!(open.handshakes(), 3);
    assert_eq!(open.count(), 3);
    // Plain requests are served meanwhile, and the tunnels carry on.
    let plain = app
        .client
        .get(app.url("/v2/things"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    for socket in [&mut first, &mut second, &mut third] {
        assert_echoes(socket, "still open").await;
    }
    assert_eq!(metric(&app, "assetpool_tunnels_open").await, 3.0);
    assert_eq!(
        metric(
            &app,
            "assetpool_tunnels_refused_total{code=\"rate_limited\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&app, "assetpool_tunnels_refused_total{code=\"overloaded\"}").await,
        2.0
    );

    // A tunnel that ends frees its place (the server's and its key's).
    first.close(None).await.unwrap();
    drop(first);
    let started = Instant::now();
    while let Err(refusal) = try_tunnel(&app.address, &key.key, &token).await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no place was freed by a closed tunnel: {refusal:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "a closed tunnel's place was free again after {:?}",
        started.elapsed()
    );
}
