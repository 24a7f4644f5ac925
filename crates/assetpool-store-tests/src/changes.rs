//! Settings shared by every server (issuer, longest token lifetime) and the
//! change feed: ordering, paging and pruning.

use crate::support::{at, new_application, new_key};
use assetpool_core::store::prelude::*;
use assetpool_core::store::Change;
use std::sync::Arc;

/// A fresh store answers.
pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

/// The first recorded issuer wins, so every server sharing the store agrees.
pub async fn issuer_is_recorded_once(store: Arc<dyn Store>) {
    let first = "http://127.0.0.1:8080";
    assert_eq!(store.issuer_or_record(first).await.unwrap(), first);
    assert_eq!(
        store
            .issuer_or_record("http://127.0.0.1:9090")
            .await
            .unwrap(),
        first
    );
    assert_eq!(store.issuer_or_record(first).await.unwrap(), first);
}

/// The longest token lifetime any server recorded, 0 when none did.
pub async fn longest_token_ttl_keeps_the_maximum(store: Arc<dyn Store>) {
    assert_eq!(store.longest_token_ttl().await.unwrap(), 0);
    assert_eq!(store.record_token_ttl(3600).await.unwrap(), 3600);
    assert_eq!(store.record_token_ttl(60).await.unwrap(), 3600);
    assert_eq!(store.longest_token_ttl().await.unwrap(), 3600);
    assert_eq!(store.record_token_ttl(86_400).await.unwrap(), 86_400);
    assert_eq!(store.record_token_ttl(3600).await.unwrap(), 86_400);
    assert_eq!(store.longest_token_ttl().await.unwrap(), 86_400);
}

/// Change ids increase; `changes_since` returns what follows a position,
/// oldest first, at most `limit` at a time.
pub async fn change_feed_is_ordered_and_limited(store: Arc<dyn Store>) {
    assert_eq!(store.latest_change_id().await.unwrap(), 0);
    assert!(store.changes_since(0, 100).await.unwrap().is_empty());
    let application = new_application(store.as_ref(), at(0)).await;
    let mut latest = 0;
    let mut expected = Vec::new();
    for minute in 0..5 {
        let key = new_key(store.as_ref(), &application.id, at(minute)).await;
        expected.push(Change::ApiKey {
            key_hash: key.key_hash,
        });
        let now_latest = store.latest_change_id().await.unwrap();
        assert!(now_latest > latest, "change ids increase");
        latest = now_latest;
    }
    let all = store.changes_since(0, 100).await.unwrap();
    let changes: Vec<Change> = all.iter().map(|record| record.change.clone()).collect();
    assert_eq!(changes, expected);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(all.last().map(|record| record.id), Some(latest));

    assert_eq!(store.changes_since(0, 2).await.unwrap(), all[..2].to_vec());
    assert_eq!(
        store.changes_since(all[1].id, 2).await.unwrap(),
        all[2..4].to_vec()
    );
    assert_eq!(
        store.changes_since(all[3].id, 100).await.unwrap(),
        all[4..].to_vec()
    );
    assert!(store.changes_since(latest, 100).await.unwrap().is_empty());
}

/// Pruning deletes changes older than the cut-off but never the newest one,
/// so `latest_change_id` never goes back.
pub async fn prune_changes_keeps_the_newest(store: Arc<dyn Store>) {
    assert_eq!(store.prune_changes(at(0)).await.unwrap(), 0);
    let application = new_application(store.as_ref(), at(0)).await;
    for minute in [0, 60, 120] {
        new_key(store.as_ref(), &application.id, at(minute)).await;
    }
    let all = store.changes_since(0, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    let latest = store.latest_change_id().await.unwrap();

    assert_eq!(store.prune_changes(at(0)).await.unwrap(), 0);
    assert_eq!(store.prune_changes(at(30)).await.unwrap(), 1);
    assert_eq!(
        store.changes_since(0, 100).await.unwrap(),
        all[1..].to_vec()
    );
    assert_eq!(store.prune_changes(at(10_000)).await.unwrap(), 1);
    assert_eq!(
        store.changes_since(0, 100).await.unwrap(),
        all[2..].to_vec()
    );
    assert_eq!(store.prune_changes(at(10_000)).await.unwrap(), 0);
    assert_eq!(store.latest_change_id().await.unwrap(), latest);

    // The feed goes on after the last remaining change.
    new_key(store.as_ref(), &application.id, at(200)).await;
    let after = store.changes_since(latest, 100).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].id > latest);
}

/// Pruning records the highest pruned id, so a follower can tell it missed
/// changes.
pub async fn prune_changes_records_its_watermark(store: Arc<dyn Store>) {
    assert_eq!(store.changes_pruned_through().await.unwrap(), 0);
    let application = new_application(store.as_ref(), at(0)).await;
    for _ in 0..3 {
        let key = new_key(store.as_ref(), &application.id, at(0)).await;
        store.revoke_api_key(&key.id, None, at(1)).await.unwrap();
    }
    let latest = store.latest_change_id().await.unwrap();
    assert_eq!(store.prune_changes(at(0)).await.unwrap(), 0);
    assert_eq!(store.changes_pruned_through().await.unwrap(), 0);
    assert!(store.prune_changes(at(60)).await.unwrap() >= 2);
    let left = store.changes_since(0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, latest);
    let watermark = store.changes_pruned_through().await.unwrap();
    assert!(watermark < latest && watermark > 0, "{watermark} {latest}");
}

/// A server that could not follow the feed while the changes it missed
/// were pruned (here: revoking a key it had cached, then pruning with a
/// clock a day ahead) drops its caches when it reads the feed again: the
/// revoked key is refused, not served from memory.
pub async fn a_follower_behind_the_pruned_feed_drops_its_caches(store: Arc<dyn Store>) {
    use assetpool_core::hashing::HashingPoolSettings;
    use assetpool_core::password::{Argon2Settings, PasswordHasher};
    use assetpool_core::throttle::ThrottleSettings;
    use assetpool_core::Clock as _;
    use assetpool_core::{
        ApiKeySecret, AuthService, Environment, ErrorCode, KeySealer, ManualClock, ServiceSettings,
    };

    let now = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let application = new_application(store.as_ref(), now).await;
    let secret = ApiKeySecret::generate(Environment::Production);
    let mut key = crate::support::key_record(&application.id, Environment::Production, now);
    key.key_hash = secret.hash();
    store.insert_api_key(&key).await.unwrap();
    let settings = ServiceSettings {
        environment: Environment::Production,
        issuer: "http://127.0.0.1".into(),
        audience: "assetpool".into(),
        token_ttl: chrono::Duration::hours(1),
        refresh_ttl: chrono::Duration::days(1),
        key_cache_capacity: 100,
        token_cache_capacity: 100,
        hashing: HashingPoolSettings::default(),
        throttle: ThrottleSettings::default(),
        max_staleness: std::time::Duration::from_secs(3600),
        alerts: assetpool_core::alerts::AlertSettings::default(),
        usage_tracking: false,
        key_lookups: Default::default(),
    };
    let hasher = PasswordHasher::new(Argon2Settings::default()).unwrap();
    let service = AuthService::start(
        store.clone(),
        clock.clone(),
        settings,
        KeySealer::plain(),
        hasher,
    )
    .await
    .unwrap();
    service
        .authenticate_key(Some(secret.expose()), None)
        .await
        .unwrap();

    // While this server does not follow the feed: the key is revoked, more
    // changes follow, and a day later another server prunes the feed.
    store.revoke_api_key(&key.id, None, now).await.unwrap();
    let other = new_key(store.as_ref(), &application.id, now).await;
    store.revoke_api_key(&other.id, None, now).await.unwrap();
    clock.advance(chrono::Duration::days(1) + chrono::Duration::minutes(1));
    assert!(
        store
            .prune_changes(clock.now() - chrono::Duration::days(1))
            .await
            .unwrap()
            >= 1
    );

    service.apply_changes().await.unwrap();
    let refused = service
        .authenticate_key(Some(secret.expose()), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::ApiKeyRevoked);
}
