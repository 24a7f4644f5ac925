//! Observability of the running binary: every log line of a request carries
//! its request id (the cause of a 5xx included), request latency by route,
//! build information, and no since-start ratio gauge; with
//! `--otlp-endpoint`, request spans reach an OTLP/HTTP collector (here a
//! stand-in on 127.0.0.1), those still queued at SIGTERM included.

use crate::helpers::{assert_clean_failure, client, made_up_key, Db, Server};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The request line and body of each request a [`Collector`] received.
type Received = Mutex<Vec<(String, Vec<u8>)>>;

/// A stand-in OTLP/HTTP collector: keeps the request line and body of every
/// request and answers 200 with an empty protobuf body.
struct Collector {
    address: SocketAddr,
    received: Arc<Received>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || Collector::answer(stream, &kept));
            }
        });
        Collector { address, received }
    }

    /// Reads requests from one connection until it closes.
    fn answer(stream: std::net::TcpStream, kept: &Received) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            kept.lock()
                .unwrap()
                .push((request_line.trim_end().to_owned(), body));
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Whether a request posted a body holding `text`; each request must be
    /// a POST to /v1/traces.
    fn holds(&self, text: &str) -> bool {
        let received = self.received.lock().unwrap();
        received.iter().any(|(line, body)| {
            assert!(line.starts_with("POST /v1/traces "), "{line}");
            body.windows(text.len())
                .any(|window| window == text.as_bytes())
        })
    }

    /// Waits (at most 10 s) until a body holds `text`.
    fn wait_for(&self, text: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.holds(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

async fn request_with_id(server: &Server, request_id: &str) {
    let response = client()
        .get(server.at("/v1/resource"))
        .header("x-api-key", made_up_key("prod"))
        .header("x-api-token", "x")
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_otlp_with_their_request_id() {
    let collector = Collector::start();
    let db = Db::new();
    let endpoint = collector.endpoint();
    // Batches leave every 100 ms.
    let mut server = Server::start_with_env(
        &db,
        &["--otlp-endpoint", &endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    request_with_id(&server, "otlp-span-4711").await;
    assert!(
        collector.wait_for("otlp-span-4711"),
        "no span with the request id reached the collector; server: {}",
        server.stderr()
    );
    assert!(collector.holds("assetpool"), "no service name");
    assert!(collector.holds("request"), "no request span");
    // Log lines are written as without the exporter.
    assert!(
        server.stderr().contains("server ready"),
        "{}",
        server.stderr()
    );
    assert!(server.terminate().success());

    // Batches would leave every 10 minutes: SIGTERM sends the queue.
    let mut server = Server::start_with_env(
        &db,
        &["--otlp-endpoint", &format!("{endpoint}/v1/traces")],
        &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
    );
    request_with_id(&server, "otlp-span-at-exit").await;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !collector.holds("otlp-span-at-exit"),
        "sent before the exit"
    );
    assert!(server.terminate().success());
    assert!(
        collector.wait_for("otlp-span-at-exit"),
        "the queued span was lost at exit: {}",
        server.stderr()
    );
}

#[test]
fn a_bad_otlp_endpoint_is_refused_naming_the_option() {
    let db = Db::new();
    for bad in [
        "collector:4318",
        "ftp://collector",
        "http://user:pw@collector:4318",
    ] {
        let output = db.run(&["serve", "--listen", "127.0.0.1:0", "--otlp-endpoint", bad]);
        let line = assert_clean_failure(&output);
        assert!(line.contains("--otlp-endpoint"), "{line}");
    }
}
