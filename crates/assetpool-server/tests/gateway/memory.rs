//! Bounded memory in reverse-proxy mode, measured on the real `assetpool`
//! binary: 200 MB up and 200 MB down through it must not grow its peak
//! resident set (VmHWM in /proc/PID/status) by more than a fraction of that.

use crate::binary::{login, seed, serve};
use crate::scenarios::start_upstream;
use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::io::Write as _;

const BODY_BYTES: u64 = 200 * 1024 * 1024;
const ALLOWED_GROWTH_KB: u64 = 64 * 1024;

/// (VmHWM, VmRSS) of a process, in KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test]
async fn large_bodies_stream_through_the_binary_with_bounded_memory() {
    if !std::path::Path::new("/proc/self/status").exists() {
        let _ = writeln!(std::io::stderr(), "skipped the memory test: no /proc");
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/gateway.db", directory.path().display());
    let upstream = format!("http://{}", start_upstream().await);
    let key = seed(&database);
    let (server, url) = serve(&database, &["--upstream", &upstream], &[]);
    let token = login(&url, &key).await;
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let request = |method: &str, path: &str, body: Body| {
        axum::http::Request::builder()
            .method(method)
            .uri(format!("{url}{path}"))
            .header("x-api-key", &key)
            .header("x-api-token", &token)
            .body(body)
            .unwrap()
    };
    // Warm up (connections, caches), then measure.
    let warm = client
        .request(request("GET", "/download/1048576", Body::empty()))
        .await
        .unwrap();
    assert_eq!(count(Body::new(warm.into_body())).await, 1_048_576);
    let pid = server.0.id();
    let before = memory_kb(pid);

    let chunk = Bytes::from(vec![1_u8; 64 * 1024]);
    let chunks = BODY_BYTES / chunk.len() as u64;
    let upload_body = Body::from_stream(
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let upload = client
        .request(request("POST", "/upload", upload_body))
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    let answer: Value = serde_json::from_slice(
        &axum::body::to_bytes(Body::new(upload.into_body()), 1024)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(answer["received"], BODY_BYTES);
    let download = client
        .request(request(
            "GET",
            &format!("/download/{BODY_BYTES}"),
            Body::empty(),
        ))
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(count(Body::new(download.into_body())).await, BODY_BYTES);

    let after = memory_kb(pid);
    let _ = writeln!(
        std::io::stderr(),
        "assetpool --upstream, 200 MiB up + 200 MiB down: VmHWM {} -> {} KiB (+{} KiB), VmRSS {} -> {} KiB",
        before.0, after.0, after.0.saturating_sub(before.0), before.1, after.1
    );
    assert!(
        after.0.saturating_sub(before.0) < ALLOWED_GROWTH_KB,
        "peak memory grew by {} KiB",
        after.0 - before.0
    );
}

async fn count(body: Body) -> u64 {
    let mut stream = body.into_data_stream();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len() as u64;
    }
    total
}
