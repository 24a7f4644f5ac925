//! A flood of made-up API keys (valid shape and checksum, never issued) may
//! cost storage reads, but never legitimate verification: a key the server
//! already holds in memory is served throughout, and the server never fails
//! closed because its change feed could not be read.

use crate::helpers::{assert_key_format, login_ok, made_up_key, Db, Key, Server, PASSWORD};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";
const FLOOD: Duration = Duration::from_secs(4);
const FLOODERS: usize = 40;

/// Floods `server` with made-up keys for [`FLOOD`] while polling it with
/// `key` and `token`; returns the answers to the legitimate requests and to
/// the flood, by status.
async fn flood(
    server: &Server,
    key: &Key,
    token: &str,
) -> (BTreeMap<u16, u64>, BTreeMap<u16, u64>) {
    let until = Instant::now() + FLOOD;
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let url = server.at("/v1/resource");
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut answers = BTreeMap::new();
                while Instant::now() < until {
                    let status = client
                        .get(&url)
                        .header("x-api-key", made_up_key("prod"))
                        .header("x-api-token", "a.b.c")
                        .send()
                        .await
                        .map_or(0, |response| response.status().as_u16());
                    *answers.entry(status).or_insert(0) += 1;
                }
                answers
            })
        })
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut legitimate = BTreeMap::new();
    while Instant::now() < until {
        let status = client
            .get(server.at("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", token)
            .send()
            .await
            .map_or(0, |response| response.status().as_u16());
        *legitimate.entry(status).or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut flooded = BTreeMap::new();
    for flooder in flooders {
        for (status, count) in flooder.await.unwrap() {
            *flooded.entry(status).or_insert(0) += count;
        }
    }
    (legitimate, flooded)
}

/// A server whose key and token are already in memory, and a failing
/// change-feed guard that would show within 2 s.
async fn warm_server(db: &Db) -> (Server, Key, String) {
    let key = db.create_key("shop", "prod");
    assert_key_format(&made_up_key("prod"), "prod");
    db.create_user(EMAIL, PASSWORD);
    let server = Server::start(db, &["--max-staleness", "2"]);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    crate::helpers::assert_resource_ok(&server, &key.key, &tokens.access).await;
    (server, key, tokens.access)
}

fn assert_served_throughout(legitimate: &BTreeMap<u16, u64>, flooded: &BTreeMap<u16, u64>) {
    let total: u64 = legitimate.values().sum();
    eprintln!("legitimate requests by status: {legitimate:?}; flood by status: {flooded:?}");
    assert!(total > 20, "too few legitimate requests: {legitimate:?}");
    assert_eq!(
        legitimate.get(&200).copied().unwrap_or(0),
        total,
        "a legitimate key in memory was refused during the flood: {legitimate:?}"
    );
    for status in flooded.keys() {
        assert!(
            [401, 429, 503].contains(status),
            "the flood got {status}: {flooded:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_keys_never_stops_verification_on_sqlite() {
    let db = Db::new();
    let (server, key, token) = warm_server(&db).await;
    let (legitimate, flooded) = flood(&server, &key, &token).await;
    assert_served_throughout(&legitimate, &flooded);
}

/// The worst case for the flood: PostgreSQL stalls every key read (another
/// session holds an exclusive lock on the keys table), so each made-up key
/// holds a storage connection for as long as it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_keys_on_a_stalled_postgres_never_stops_verification() {
    let Some(db) = Db::postgres("made_up_key_flood").await else {
        return;
    };
    let (server, key, token) = warm_server(&db).await;
    let mut locker = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("a second session");
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    // The stall ends with the flood (the reads it held up then finish).
    let unlock = tokio::spawn(async move {
        tokio::time::sleep(FLOOD).await;
        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    });
    let (legitimate, flooded) = flood(&server, &key, &token).await;
    unlock.await.unwrap();
    assert_served_throughout(&legitimate, &flooded);
    // Storage answers again: made-up keys are refused as such (once this
    // client's budget of key reads has refilled a little).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = reqwest::Client::new()
        .get(server.at("/v1/resource"))
        .header("x-api-key", made_up_key("prod"))
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
}
