//! `serve --limits-store redis://...`: rate limits and quotas decided in
//! Redis for every server together (exactly the burst, the rate and the
//! quota across three servers), and by each server alone while Redis does
//! not answer, until it answers again, without a restart.
//!
//! Redis tests skip (with a line on stderr) when Redis is unreachable or
//! `redis-server` is missing, unless `ASSETPOOL_REQUIRE_REDIS=1`.

use crate::helpers::{assert_clean_failure, client, login_ok, Db, Key, Server, PASSWORD};
use crate::redis_support::{self, OwnRedis};
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";

/// Starts `count` servers on `db` sharing the limits store at `url`: the
/// first alone (it creates a fresh SQLite database), the others at once.
fn start_nodes(db: &Db, url: &str, count: usize) -> Vec<Server> {
    let first = Server::start(db, &["--limits-store", url]);
    std::thread::scope(|scope| {
        let starting: Vec<_> = (1..count)
            .map(|_| scope.spawn(|| Server::start(db, &["--limits-store", url])))
            .collect();
        std::iter::once(first)
            .chain(
                starting
                    .into_iter()
                    .map(|handle| handle.join().expect("a server starts")),
            )
            .collect()
    })
}

/// A production key with `limits` (`--rate 1/s --burst 5`, ...) and a user.
fn limited_key(db: &Db, limits: &[&str]) -> Key {
    let mut args = vec!["keys", "create", "--name", "metered", "--env", "prod"];
    args.extend_from_slice(limits);
    args.push("--json");
    let key = Key::from_json(&db.json(&args));
    db.create_user(EMAIL, PASSWORD);
    key
}

/// The answers to one request of a batch: 200, or 429 with its headers.
#[derive(Debug, Default)]
struct Batch {
    admitted: usize,
    /// (`Retry-After`, `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`) of each 429.
    refused: Vec<[String; 4]>,
    took: Duration,
}

/// Sends `count` GET /v1/resource at once, spread over `nodes` in turn.
async fn batch(nodes: &[Server], key: &str, token: &str, count: usize) -> Batch {
    let http = client();
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..count {
        let request = http
            .get(nodes[index % nodes.len()].at("/v1/resource"))
            .header("x-api-key", key)
            .header("x-api-token", token)
            .send();
        requests.spawn(request);
    }
    let mut batch = Batch::default();
    while let Some(response) = requests.join_next().await {
        let response = response.expect("a request task").expect("a response");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        match response.status().as_u16() {
            200 => batch.admitted += 1,
            429 => batch.refused.push([
                header("retry-after"),
                header("ratelimit-limit"),
                header("ratelimit-remaining"),
                header("ratelimit-reset"),
            ]),
            other => panic!("GET /v1/resource answered {other}"),
        }
    }
    batch.took = started.elapsed();
    batch
}

/// The value of the metric `name` (without labels) on `node`'s /metrics.
async fn metric(node: &Server, name: &str) -> Option<f64> {
    let text = client()
        .get(node.at("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

async fn three_nodes_admit_exactly_the_burst_then_the_rate(db: Db) {
    let Some(url) = redis_support::shared("three_nodes_admit_exactly_the_burst_then_the_rate")
    else {
        return;
    };
    let nodes = start_nodes(&db, url, 3);
    let key = limited_key(&db, &["--rate", "1/s", "--burst", "5"]);
    let token = login_ok(&nodes[0], &key.key, EMAIL, PASSWORD).await.access;
    // The login took one request of the burst: a second later it is full again.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let first = batch(&nodes, &key.key, &token, 30).await;
    assert_eq!(
        first.admitted, 5,
        "three servers together admit the burst of 5 (batch took {:?})",
        first.took
    );
    assert_eq!(first.refused.len(), 25);
    for headers in &first.refused {
        assert_eq!(headers, &["1", "5", "0", "1"].map(String::from));
    }

    // After one interval of the rate (1/s), exactly one more request.
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(first.took)).await;
    let second = batch(&nodes, &key.key, &token, 15).await;
    assert_eq!(
        second.admitted, 1,
        "after a second, the rate of 1/s admits one (batches took {:?} and {:?})",
        first.took, second.took
    );
    for node in &nodes {
        assert_eq!(
            metric(node, "assetpool_limits_store_fallbacks_total").await,
            Some(0.0)
        );
        assert_eq!(metric(node, "assetpool_limits_store_up").await, Some(1.0));
        node.assert_no_secrets(&[&key.key, &token, PASSWORD]);
    }
}

async fn three_nodes_admit_exactly_the_quota(db: Db) {
    let Some(url) = redis_support::shared("three_nodes_admit_exactly_the_quota") else {
        return;
    };
    let nodes = start_nodes(&db, url, 3);
    let key = limited_key(&db, &["--quota", "7/day"]);
    // The login counts as one request of the quota.
    let token = login_ok(&nodes[1], &key.key, EMAIL, PASSWORD).await.access;
    let counted = batch(&nodes, &key.key, &token, 30).await;
    assert_eq!(
        counted.admitted, 6,
        "three servers together admit the quota"
    );
    for [retry_after, limit, remaining, reset] in &counted.refused {
        assert_eq!((limit.as_str(), remaining.as_str()), ("7", "0"));
        assert_eq!(retry_after, reset);
        let seconds: u64 = retry_after.parse().expect("seconds");
        assert!((1..=86_400).contains(&seconds), "{seconds}");
    }
    // A server started later, which has not learned the count from
    // storage yet, admits nothing more either.
    let late = start_nodes(&db, url, 1);
    assert_eq!(batch(&late, &key.key, &token, 3).await.admitted, 0);
}

/// One server on a Redis of the test's own, with a key of burst 3 and a
/// rate of 1/h (no refill within the test).
async fn a_server_decides_alone_while_redis_is_away(db: Db) {
    let Some(mut redis) = OwnRedis::start("a_server_decides_alone_while_redis_is_away") else {
        return;
    };
    let node = Server::start(&db, &["--limits-store", &redis.url()]);
    let key = limited_key(&db, &["--rate", "1/h", "--burst", "3"]);
    let token = login_ok(&node, &key.key, EMAIL, PASSWORD).await.access;
    let nodes = [node];
    let node = &nodes[0];
    // Redis decides: the login took one of the 3.
    assert_eq!(batch(&nodes, &key.key, &token, 5).await.admitted, 2);

    redis.kill();
    // The server decides alone, with its own bucket (untouched so far): no
    // request is refused for want of Redis.
    let alone = batch(&nodes, &key.key, &token, 5).await;
    assert_eq!(alone.admitted, 3, "per-server limits while Redis is away");
    let fallbacks = metric(node, "assetpool_limits_store_fallbacks_total")
        .await
        .expect("the fallback counter");
    assert!(fallbacks >= 5.0, "{fallbacks}");
    assert_eq!(metric(node, "assetpool_limits_store_up").await, Some(0.0));
    // Degraded, not down: still ready.
    let ready = crate::helpers::get_json(node, "/readyz").await;
    assert_eq!(ready["limitsStore"], "down", "{ready}");

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(node, "assetpool_limits_store_up").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the server did not return to Redis within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = crate::helpers::get_json(node, "/readyz").await;
    assert_eq!(ready["limitsStore"], "up", "{ready}");
    // Redis decides again (it restarted empty: a full burst), although the
    // server's own bucket is empty.
    let shared = batch(&nodes, &key.key, &token, 5).await;
    assert_eq!(shared.admitted, 3, "Redis decides again after its return");
    let fallbacks_after = metric(node, "assetpool_limits_store_fallbacks_total")
        .await
        .expect("the fallback counter");
    assert!(
        fallbacks_after - fallbacks < 1.0,
        "no fallback once Redis answers"
    );

    let log = node.stderr();
    let warnings = log
        .lines()
        .filter(|line| line.contains("limits store unreachable"))
        .count();
    assert_eq!(warnings, 1, "one warning for the outage: {log}");
    node.assert_no_secrets(&[&key.key, &token, PASSWORD]);
}

crate::on_both_backends! {
    three_nodes_share_the_burst_and_the_rate => three_nodes_admit_exactly_the_burst_then_the_rate;
    three_nodes_share_the_quota => three_nodes_admit_exactly_the_quota;
    redis_away_and_back => a_server_decides_alone_while_redis_is_away;
}

#[tokio::test]
async fn a_bad_limits_store_is_refused_and_an_unreachable_one_is_waited_for() {
    let db = Db::new();
    for bad in [
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
        "redis://:hunter2-not-shown@[::1",
    ] {
        let message = assert_clean_failure(&db.run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--limits-store",
            bad,
        ]));
        assert!(message.contains("redis://HOST:PORT"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    // Nothing listens there: the server starts anyway, limits per server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let node = Server::start_with_env(&db, &[], &[("ASSETPOOL_LIMITS_STORE", &url)]);
    let key = limited_key(&db, &["--rate", "1/h", "--burst", "2"]);
    let token = login_ok(&node, &key.key, EMAIL, PASSWORD).await.access;
    let nodes = [node];
    assert_eq!(batch(&nodes, &key.key, &token, 4).await.admitted, 1);
    assert_eq!(
        metric(&nodes[0], "assetpool_limits_store_up").await,
        Some(0.0)
    );
    let log = nodes[0].stderr();
    assert!(log.contains("limits store unreachable at start"), "{log}");
}
