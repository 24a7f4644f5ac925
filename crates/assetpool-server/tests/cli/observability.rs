//! Observability of the running binary: every log line of a request carries
//! its request id (the cause of a 5xx included), request latency by route,
//! build information, and no since-start ratio gauge.

use crate::helpers::{client, made_up_key, Db, Server};
use serde_json::Value;

/// The server's JSON log lines.
fn log_lines(server: &Server) -> Vec<Value> {
    server
        .stderr()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

async fn the_cause_of_a_5xx_is_logged_with_the_request_id(db: Db) {
    let server = Server::start(&db, &["--log-format", "json"]);
    // Storage breaks under the server: a key it has not cached cannot be read.
    if db.url.starts_with("sqlite:") {
        db.sql("ALTER TABLE api_keys RENAME TO api_keys_gone").await;
    } else {
        db.sql("DROP TABLE api_keys CASCADE").await;
    }
    let request_id = "trace-me-4711";
    let response = client()
        .get(server.at("/v1/resource"))
        .header("x-api-key", made_up_key("prod"))
        .header("x-api-token", "x")
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_server_error(),
        "status {}",
        response.status()
    );
    assert_eq!(response.headers()["x-request-id"], request_id);

    let lines = log_lines(&server);
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == request_id)
        .collect();
    let cause = of_request
        .iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line carries the request id: {lines:?}"));
    assert_eq!(cause["span"]["name"], "request");
    assert!(
        cause["fields"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("api_keys")),
        "the cause is not in the line: {cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cause_of_a_5xx_is_logged_with_the_request_id_sqlite() {
    the_cause_of_a_5xx_is_logged_with_the_request_id(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cause_of_a_5xx_is_logged_with_the_request_id_postgres() {
    if let Some(db) = Db::postgres("request_span").await {
        the_cause_of_a_5xx_is_logged_with_the_request_id(db).await;
    }
}

/// `/metrics` has a latency histogram by route and the build information;
/// the since-start cache hit ratio is gone (rates come from the counters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_latency_by_route_and_build_info() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    let server = Server::start(&db, &[]);
    for _ in 0..3 {
        let _ = client()
            .get(server.at("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", "not-a-token")
            .send()
            .await
            .unwrap();
    }
    let text = client()
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = text
        .lines()
        .find(|line| {
            line.starts_with("assetpool_http_request_duration_seconds_count")
                && line.contains("route=\"/v1/resource\"")
        })
        .unwrap_or_else(|| panic!("no latency histogram for /v1/resource:\n{text}"));
    assert!(count.ends_with(" 3"), "{count}");
    assert!(
        text.contains("assetpool_http_request_duration_seconds_bucket{le=")
            || text.contains("assetpool_http_request_duration_seconds_bucket{route="),
        "no buckets:\n{text}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("assetpool_build_info{{version=\"{version}\"}} 1")),
        "no build info:\n{text}"
    );
    assert!(
        !text.contains("cache_hit_ratio"),
        "the since-start ratio gauge is still exported"
    );
}
