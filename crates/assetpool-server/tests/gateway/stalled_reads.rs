//! Tunnel re-checks while storage is slow to answer for a key (PostgreSQL: a
//! session holds `LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE`, so every
//! read of a key not in memory waits). What the server knows from memory
//! (logout, user disable, token expiry) still closes tunnels within a
//! second, also those whose own key is being read; one tunnel's slow read
//! holds up no other tunnel; a tunnel whose key was just changed (rotated)
//! is not closed because its key cannot be read at once or the key reads
//! are all busy (503 `overloaded` on the request path), but only once its
//! key has gone unconfirmed for the maximum staleness.
//!
//! SQLite readers are never blocked by another session (WAL), so these run
//! on PostgreSQL only.

use crate::helpers::{Backend, TestApp, TestKey, PASSWORD};
use crate::scenarios::start_upstream_counting;
use crate::tunnels::{
    assert_echoes, closed_within, login, open_tunnel, proxy_before, Socket, REVOCATION_LIMIT,
};
use assetpool_core::api_key::ApiKeySecret;
use assetpool_core::Environment;
use secrecy::SecretString;
use sqlx::{Connection as _, PgConnection};
use std::time::{Duration, Instant};

/// The advisory lock the PostgreSQL store takes before appending to its
/// change feed (so that change ids become visible in order).
const CHANGE_FEED_LOCK: i64 = 0x6173_7365_7470_6f6c;

/// A second session holding the keys table: every read of it waits.
struct Stall(PgConnection);

impl Stall {
    async fn begin(app: &TestApp) -> Stall {
        let mut connection = PgConnection::connect(&app.database_url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
        sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
            .execute(&mut connection)
            .await
            .unwrap();
        Stall(connection)
    }

    async fn end(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
    }
}

/// The hash of `key`, as storage and the change feed name it.
fn key_hash(key: &TestKey) -> String {
    ApiKeySecret::parse(&key.key).unwrap().hash().to_hex()
}

/// Announces a change to the key with `hash` on the change feed, as every
/// change to a key does (the feed is its own table, not locked): every
/// server drops the key from memory and reads it again when next asked.
/// Announced by hand so that the read certainly comes while the table is
/// locked, whatever the timing of the server's feed and re-checks.
async fn announce_key_change(app: &TestApp, hash: &str) {
    let mut connection = PgConnection::connect(&app.database_url).await.unwrap();
    let mut transaction = connection.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGE_FEED_LOCK)
        .execute(&mut *transaction)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO changes (kind, subject, until_at, created_at) \
         VALUES ('api_key', $1, NULL, (extract(epoch FROM now()) * 1000)::BIGINT) RETURNING id",
    )
    .bind(hash)
    .fetch_one(&mut *transaction)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('assetpool_changes', $1)")
        .bind(id.to_string())
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

/// Waits until at least `count` sessions wait for the keys table.
async fn reads_waiting(app: &TestApp, count: i64) {
    let mut connection = PgConnection::connect(&app.database_url).await.unwrap();
    let started = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'api_keys'::regclass",
        )
        .fetch_one(&mut connection)
        .await
        .unwrap();
        if waiting >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{waiting} reads of the keys table wait, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A user logged in through `key`: the access token.
async fn user_token(app: &TestApp, key: &TestKey, email: &str) -> String {
    app.admin
        .create_user(email, SecretString::from(PASSWORD), false)
        .await
        .unwrap();
    login(app, key, email, PASSWORD).await
}

/// A tunnel that must stay open: it still carries messages after `for_at_least`.
async fn stays_open(socket: &mut Socket, for_at_least: Duration) {
    let until = Instant::now() + for_at_least;
    while Instant::now() < until {
        assert_echoes(socket, "still open").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rechecks_go_on_while_a_keys_read_is_stalled() {
    let Some(backend) = Backend::postgres("rechecks_go_on_while_a_keys_read_is_stalled").await
    else {
        return;
    };
    let (upstream, open) = start_upstream_counting().await;
    let app = proxy_before(backend, upstream, |_| {}).await;
    let stalled_key = app.create_key(Environment::Production).await;
    let other_key = app.create_key(Environment::Production).await;
    let alice = user_token(&app, &stalled_key, "alice@example.com").await;
    let bob = user_token(&app, &stalled_key, "bob@example.com").await;
    let carol = user_token(&app, &other_key, "carol@example.com").await;
    let (mut alices, _) = open_tunnel(&app.address, &stalled_key.key, &alice).await;
    let (mut bobs, _) = open_tunnel(&app.address, &stalled_key.key, &bob).await;
    let (mut carols, _) = open_tunnel(&app.address, &other_key.key, &carol).await;

    let hash = key_hash(&stalled_key);
    let stall = Stall::begin(&app).await;
    announce_key_change(&app, &hash).await;
    // The server's re-check now waits for the key's read.
    reads_waiting(&app, 1).await;

    // Another key's tunnel is re-checked all the same: its logout closes it.
    let logout = app
        .client
        .post(app.url("/api/authentication/logout"))
        .header("x-api-key", &other_key.key)
        .header("x-api-token", &carol)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let took = closed_within(&mut carols, REVOCATION_LIMIT).await;
    eprintln!("another key's tunnel closed {took:?} after its logout, during the stall");
    // The stalled key's own tunnels: what memory knows still counts.
    app.admin
        .set_user_disabled("alice@example.com", true)
        .await
        .unwrap();
    let took = closed_within(&mut alices, REVOCATION_LIMIT).await;
    eprintln!("the stalled key's tunnel closed {took:?} after its user's disable");
    // The other tunnel of the stalled key is kept while its key is unread.
    stays_open(&mut bobs, Duration::from_millis(1500)).await;

    stall.end().await;
    stays_open(&mut bobs, Duration::from_millis(1000)).await;
    assert_eq!(open.count(), 1);
}

#[tokio::test]
async fn a_rotated_keys_tunnel_outlives_busy_key_reads_until_the_maximum_staleness() {
    let Some(backend) = Backend::postgres("a_rotated_keys_tunnel_outlives_busy_key_reads").await
    else {
        return;
    };
    let (upstream, _open) = start_upstream_counting().await;
    let max_staleness = Duration::from_secs(3);
    let app = proxy_before(backend, upstream, |settings| {
        settings.max_staleness = max_staleness;
    })
    .await;
    let key = app.create_key(Environment::Production).await;
    let token = user_token(&app, &key, "alice@example.com").await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    app.admin
        .rotate_api_key(&key.id, chrono::Duration::hours(1))
        .await
        .unwrap();
    // The rotation is seen and the rotating key read again (not stalled yet).
    stays_open(&mut socket, Duration::from_millis(600)).await;

    // Every key read slot waits for the locked table (made-up keys, as any
    // client can send), so reading the rotated key is refused as overloaded.
    let stall = Stall::begin(&app).await;
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let request = app
                .client
                .get(app.url("/v1/resource"))
                .header(
                    "x-api-key",
                    ApiKeySecret::generate(Environment::Production).expose(),
                )
                .header("x-api-token", &token)
                .send();
            tokio::spawn(request)
        })
        .collect();
    reads_waiting(&app, 4).await;
    announce_key_change(&app, &key_hash(&key)).await;
    let stalled = Instant::now();
    stays_open(&mut socket, Duration::from_millis(1500)).await;
    // Unconfirmed for longer than the maximum staleness: closed.
    let took = closed_within(&mut socket, max_staleness + REVOCATION_LIMIT).await;
    let unconfirmed = stalled.elapsed();
    eprintln!("a tunnel whose key stayed unread was closed after {unconfirmed:?} ({took:?} after the last echo)");
    assert!(unconfirmed >= max_staleness - Duration::from_millis(500));
    stall.end().await;
    for request in flood {
        let _ = request.await;
    }
}
