//! Losing PostgreSQL under a running server, and getting it back.

use crate::helpers::{assert_error, Backend, Storage, TestApp, PASSWORD};
use crate::proxy::TcpProxy;
use assetpool_core::store::prelude::*;
use assetpool_core::Clock;
use assetpool_store_postgres::PostgresStore;
use std::time::Duration;

#[tokio::test]
async fn losing_postgres_fails_closed_and_recovers_without_a_restart() {
    let Some(_) = Backend::postgres("losing_postgres").await else {
        return;
    };
    let schema = assetpool_store_tests::postgres::fresh_schema("losing_postgres")
        .await
        .unwrap();
    let direct_url = schema.url.clone();
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied_url = direct_url.replacen("127.0.0.1:5432", &proxy.address.to_string(), 1);
    assert_ne!(
        proxied_url, direct_url,
        "the test server URL names 127.0.0.1:5432"
    );
    let app = TestApp::start(proxied_url, Storage::Postgres(schema), |settings| {
        settings.max_staleness = Duration::from_secs(10);
    })
    .await;
    let (key, token, _) = app.logged_in().await;
    app.create_user("bob@example.com").await;
    let direct = PostgresStore::open(&direct_url).await.unwrap();

    proxy.cut();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_error(ready, 503, "storage_unavailable").await;
    let login = app.login(&key.key, "bob@example.com", PASSWORD).await;
    assert!(login.headers().contains_key("retry-after"));
    assert_error(login, 503, "storage_unavailable").await;
    // Checked from memory while the state is fresh enough.
    assert_eq!(app.resource(&key.key, &token).await.status(), 200);

    // A revocation made meanwhile, directly on the database.
    let user = direct
        .user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    direct
        .set_user_disabled(&user.id, true, app.clock.now())
        .await
        .unwrap();

    // Past the maximum staleness: fail closed.
    app.eventually(Duration::from_secs(15), || async {
        app.resource(&key.key, &token).await.status() == 503
    })
    .await;
    assert_error(
        app.resource(&key.key, &token).await,
        503,
        "storage_unavailable",
    )
    .await;

    proxy.restore().await;
    app.eventually(Duration::from_secs(15), || async {
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
    })
    .await;
    // The revocation made meanwhile is applied.
    app.eventually(Duration::from_secs(5), || async {
        app.resource(&key.key, &token).await.status() == 401
    })
    .await;
    assert_error(app.resource(&key.key, &token).await, 401, "token_revoked").await;
    assert_eq!(
        app.login(&key.key, "bob@example.com", PASSWORD)
            .await
            .status(),
        200
    );
}
