//! `serve --metrics-listen ADDR`: `GET /metrics` on its own listener only.

use crate::helpers::{assert_clean_failure, client, login_ok, Db, Server, PASSWORD};
use std::time::{Duration, Instant};

/// The `metrics on http://ADDR` line printed after `listening on`: the URL.
fn metrics_url(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = server.stdout_lines();
        if let Some(index) = lines
            .iter()
            .position(|line| line.starts_with("metrics on http://"))
        {
            let listening = lines
                .iter()
                .position(|line| line.starts_with("listening on "))
                .expect("a listening line");
            assert!(
                listening < index,
                "metrics line before listening: {lines:?}"
            );
            let url = lines[index]["metrics on ".len()..].trim().to_owned();
            assert!(
                !url.ends_with(":0"),
                "the printed address is not the bound one"
            );
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "no `metrics on` line: {lines:?}; stderr: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("GET");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `/metrics` answers on the metrics listener only; nothing else does there.
async fn assert_metrics_apart(server: &Server, metrics: &str) {
    assert_ne!(metrics, server.url);
    let (status, text) = get(&format!("{metrics}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# TYPE assetpool_http_requests counter"),
        "{text}"
    );
    assert!(text.contains("assetpool_storage_operation_duration_seconds"));
    let (status, body) = get(&server.at("/metrics")).await;
    assert_eq!(status, 404, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "not_found");
    let (status, _) = get(&format!("{metrics}/healthz")).await;
    assert_eq!(status, 404, "only /metrics on the metrics listener");
    let (status, _) = get(&server.at("/healthz")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn metrics_listen_serves_metrics_on_a_second_address_only() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    db.create_user("alice@example.com", PASSWORD);
    let mut server = Server::start(&db, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_url(&server);
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");
    assert_metrics_apart(&server, &metrics).await;

    // Requests on the main listener are counted and shown on the metrics one.
    let tokens = login_ok(&server, &key.key, "alice@example.com", PASSWORD).await;
    let (_, text) = get(&format!("{metrics}/metrics")).await;
    assert!(
        text.contains(
            "assetpool_http_requests_total{route=\"/api/authentication/login\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(!text.contains(&key.key) && !text.contains(&key.id));
    assert!(!text.contains(&tokens.access));

    // Both listeners stop on SIGTERM.
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(client()
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn metrics_listen_comes_from_the_environment_or_the_config_file() {
    let db = Db::new();
    let server = Server::start_with_env(&db, &[], &[("ASSETPOOL_METRICS_LISTEN", "127.0.0.1:0")]);
    let metrics = metrics_url(&server);
    assert_metrics_apart(&server, &metrics).await;
    drop(server);

    let config = db.path().join("assetpool.toml");
    std::fs::write(&config, "metrics-listen = \"127.0.0.1:0\"\n").unwrap();
    let server = Server::start(&db, &["--config", config.to_str().unwrap()]);
    let metrics = metrics_url(&server);
    assert_metrics_apart(&server, &metrics).await;
}

#[tokio::test]
async fn without_metrics_listen_metrics_stay_on_the_main_listener() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let (status, text) = get(&server.at("/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("assetpool_alert_outbox_backlog"), "{text}");
    assert!(!server
        .stdout_lines()
        .iter()
        .any(|line| line.starts_with("metrics on")));
}

#[test]
fn an_address_in_use_is_one_clear_error() {
    let db = Db::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &address,
    ]);
    let line = assert_clean_failure(&output);
    assert!(
        line.starts_with(&format!(
            "error: could not listen for metrics on {address}: "
        )),
        "{line}"
    );
}
