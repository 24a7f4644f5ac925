//! Applications and API keys: insertion, look-up by hash and id, listing,
//! revocation (with its effect on sessions), rotation and last-use times.

use crate::support::{
    at, changes_after, key_record, logged_in, new_application, new_key, new_session, random_hash,
    revoked_at, revoked_in_feed, sorted, spend,
};
use assetpool_core::ids::KeyId;
use assetpool_core::store::{ApplicationRecord, Change, CreationPage, RefreshOutcome, StoreError};
use assetpool_core::{ApiKeyStatus, Environment, Store};
use chrono::Duration;
use std::sync::Arc;

/// An application is found by id once created; an unknown id is `None`; an id
/// cannot be created twice.
pub async fn applications_round_trip(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    assert_eq!(
        store.application(&application.id).await.unwrap(),
        Some(application.clone())
    );
    assert_eq!(
        store.application(&"app_unknown".into()).await.unwrap(),
        None
    );
    let again = ApplicationRecord {
        name: "another".to_owned(),
        ..application
    };
    assert!(matches!(
        store.create_application(&again).await,
        Err(StoreError::Conflict(_))
    ));
}

/// A stored key comes back unchanged by hash and by id, its creation is in the
/// change feed (so negative cache entries are dropped), and unknown ones are `None`.
pub async fn api_keys_are_found_by_hash_and_id(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let before = store.latest_change_id().await.unwrap();
    let mut key = key_record(&application.id, Environment::Staging, at(1));
    key.expires_at = Some(at(60 * 24));
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.api_key(&key.id).await.unwrap(), Some(key.clone()));
    assert!(changes_after(store.as_ref(), before)
        .await
        .contains(&Change::ApiKey {
            key_hash: key.key_hash
        }));
    assert_eq!(store.api_key_by_hash(&random_hash()).await.unwrap(), None);
    assert_eq!(store.api_key(&"key_unknown".into()).await.unwrap(), None);
}

/// Two keys cannot share a hash; a key needs an existing application.
pub async fn duplicate_key_hash_conflicts(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let first = new_key(store.as_ref(), &application.id, at(0)).await;
    let mut second = key_record(&application.id, Environment::Production, at(1));
    second.key_hash = first.key_hash;
    assert!(matches!(
        store.insert_api_key(&second).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.api_key(&second.id).await.unwrap(), None);
    let orphan = key_record(&"app_unknown".into(), Environment::Production, at(1));
    assert!(store.insert_api_key(&orphan).await.is_err());
    assert_eq!(
        store
            .list_api_keys(None, &CreationPage::all())
            .await
            .unwrap(),
        vec![first]
    );
}

/// Listing returns every key oldest first, or only those of one environment.
pub async fn list_api_keys_filters_by_environment_oldest_first(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let mut inserted = Vec::new();
    // Inserted out of creation order.
    for (minute, environment) in [
        (30, Environment::Production),
        (10, Environment::Development),
        (20, Environment::Production),
        (40, Environment::Staging),
        (5, Environment::Production),
    ] {
        let key = key_record(&application.id, environment, at(minute));
        store.insert_api_key(&key).await.unwrap();
        inserted.push(key);
    }
    let mut expected = inserted.clone();
    expected.sort_by_key(|key| key.created_at);
    assert_eq!(
        store
            .list_api_keys(None, &CreationPage::all())
            .await
            .unwrap(),
        expected
    );
    for environment in Environment::ALL {
        let only: Vec<_> = expected
            .iter()
            .filter(|key| key.environment == environment)
            .cloned()
            .collect();
        assert_eq!(
            store
                .list_api_keys(Some(environment), &CreationPage::all())
                .await
                .unwrap(),
            only
        );
    }
}

/// Revocation records its time and reason, announces the key in the change
/// feed, and an unknown id is `NotFound`.
pub async fn revoke_api_key_records_time_and_reason(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    let before = store.latest_change_id().await.unwrap();
    let revoked = store
        .revoke_api_key(&key.id, Some("leaked in a log"), at(5))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(5)));
    assert_eq!(revoked.revoked_reason.as_deref(), Some("leaked in a log"));
    assert_eq!(revoked.status(at(6)), ApiKeyStatus::Revoked);
    assert_eq!(store.api_key(&key.id).await.unwrap(), Some(revoked.clone()));
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(revoked)
    );
    assert!(changes_after(store.as_ref(), before)
        .await
        .contains(&Change::ApiKey {
            key_hash: key.key_hash
        }));
    let other = new_key(store.as_ref(), &application.id, at(0)).await;
    let without_reason = store.revoke_api_key(&other.id, None, at(7)).await.unwrap();
    assert_eq!(without_reason.revoked_at, Some(at(7)));
    assert_eq!(without_reason.revoked_reason, None);
    assert!(matches!(
        store
            .revoke_api_key(&"key_unknown".into(), None, at(5))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Revoking one of two usable keys revokes only the sessions opened through
/// it; revoking the last one revokes all the application's sessions (and
/// announces each), and only them.
pub async fn revoking_the_last_usable_key_revokes_the_sessions(store: Arc<dyn Store>) {
    let first = logged_in(store.as_ref(), "first@example.test").await;
    let application_id = first.key.application_id.clone();
    let second_key = new_key(store.as_ref(), &application_id, at(0)).await;
    // An expired key of the application does not count as usable.
    let mut expired = key_record(&application_id, Environment::Production, at(0));
    expired.expires_at = Some(at(3));
    store.insert_api_key(&expired).await.unwrap();
    let second_session = new_session(store.as_ref(), &first.user, &second_key, at(1)).await;
    let bystander = logged_in(store.as_ref(), "bystander@example.test").await;

    let before = store.latest_change_id().await.unwrap();
    store
        .revoke_api_key(&first.key.id, None, at(10))
        .await
        .unwrap();
    assert_eq!(
        revoked_at(store.as_ref(), at(11)).await,
        vec![first.session.id.clone()]
    );
    assert_eq!(
        revoked_in_feed(store.as_ref(), before).await,
        vec![first.session.id.clone()]
    );

    let before = store.latest_change_id().await.unwrap();
    store
        .revoke_api_key(&second_key.id, None, at(20))
        .await
        .unwrap();
    let expected = sorted([&first.session.id, &second_session.id]);
    assert_eq!(revoked_at(store.as_ref(), at(21)).await, expected);
    assert_eq!(
        revoked_in_feed(store.as_ref(), before).await,
        vec![second_session.id.clone()]
    );
    let refresh = spend(second_session.refresh_hash, &application_id, at(22));
    assert_eq!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Invalid
    );
    let refresh = spend(
        bystander.session.refresh_hash,
        &bystander.key.application_id,
        at(22),
    );
    assert!(matches!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
}

/// Rotation stores the successor, ends the old key at the grace end, links it
/// to its successor, and announces both keys.
pub async fn rotate_api_key_stores_the_successor(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let old = new_key(store.as_ref(), &application.id, at(0)).await;
    let successor = key_record(&application.id, Environment::Production, at(10));
    let before = store.latest_change_id().await.unwrap();
    let returned = store
        .rotate_api_key(&old.id, &successor, at(10 + 60 * 24), at(10))
        .await
        .unwrap();
    assert_eq!(returned, successor);
    assert_eq!(
        store.api_key(&successor.id).await.unwrap(),
        Some(successor.clone())
    );
    assert_eq!(
        store.api_key_by_hash(&successor.key_hash).await.unwrap(),
        Some(successor.clone())
    );
    let rotated = store.api_key(&old.id).await.unwrap().unwrap();
    assert_eq!(rotated.expires_at, Some(at(10 + 60 * 24)));
    assert_eq!(
        rotated.successor_id.as_ref().map(|id| id.as_str()),
        Some(successor.id.as_str())
    );
    assert_eq!(rotated.revoked_at, None);
    assert_eq!(rotated.status(at(11)), ApiKeyStatus::Rotating);
    assert_eq!(rotated.status(at(10 + 60 * 24)), ApiKeyStatus::Expired);
    let changes = changes_after(store.as_ref(), before).await;
    assert!(changes.contains(&Change::ApiKey {
        key_hash: old.key_hash
    }));
    assert!(changes.contains(&Change::ApiKey {
        key_hash: successor.key_hash
    }));
    assert!(matches!(
        store
            .rotate_api_key(
                &"key_unknown".into(),
                &key_record(&application.id, Environment::Production, at(10)),
                at(20),
                at(10)
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

/// A key rotates once; revoked and expired keys do not rotate; a refused
/// rotation stores nothing.
pub async fn rotate_api_key_refuses_rotated_revoked_and_expired_keys(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let fresh = |minute| key_record(&application.id, Environment::Production, at(minute));
    let rotated = new_key(store.as_ref(), &application.id, at(0)).await;
    store
        .rotate_api_key(&rotated.id, &fresh(1), at(100), at(1))
        .await
        .unwrap();
    let revoked = new_key(store.as_ref(), &application.id, at(0)).await;
    store
        .revoke_api_key(&revoked.id, None, at(2))
        .await
        .unwrap();
    let mut expired = fresh(0);
    expired.expires_at = Some(at(3));
    store.insert_api_key(&expired).await.unwrap();
    let count = store
        .list_api_keys(None, &CreationPage::all())
        .await
        .unwrap()
        .len();
    for (what, id) in [
        ("rotated", &rotated.id),
        ("revoked", &revoked.id),
        ("expired", &expired.id),
    ] {
        let refused = fresh(5);
        let outcome = store.rotate_api_key(id, &refused, at(100), at(5)).await;
        assert!(
            matches!(outcome, Err(StoreError::Conflict(_))),
            "{what}: {outcome:?}"
        );
        assert_eq!(store.api_key(&refused.id).await.unwrap(), None, "{what}");
    }
    assert_eq!(
        store
            .list_api_keys(None, &CreationPage::all())
            .await
            .unwrap()
            .len(),
        count
    );
    let still = store.api_key(&rotated.id).await.unwrap().unwrap();
    assert_eq!(still.expires_at, Some(at(100)));
}

/// Ten concurrent rotations of one key: exactly one succeeds, the others
/// conflict and leave no successor behind.
pub async fn concurrent_rotations_have_one_winner(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let old = new_key(store.as_ref(), &application.id, at(0)).await;
    let start = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        let start = start.clone();
        let old_id = old.id.clone();
        let successor = key_record(&application.id, Environment::Production, at(1));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let outcome = store
                .rotate_api_key(&old_id, &successor, at(60), at(1))
                .await;
            (successor, outcome)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (successor, Ok(_)) => winners.push(successor),
            (_, Err(StoreError::Conflict(_))) => {}
            (_, Err(other)) => panic!("a concurrent rotation failed with {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation succeeds");
    let rotated = store.api_key(&old.id).await.unwrap().unwrap();
    assert_eq!(
        rotated.successor_id.as_ref().map(|id| id.as_str()),
        Some(winners[0].id.as_str())
    );
    let ids: Vec<KeyId> = store
        .list_api_keys(None, &CreationPage::all())
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&old.id) && ids.contains(&winners[0].id));
}

/// Last-use times only move forward, whatever order batches arrive in.
pub async fn record_api_key_use_keeps_the_latest_time(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let first = new_key(store.as_ref(), &application.id, at(0)).await;
    let second = new_key(store.as_ref(), &application.id, at(0)).await;
    let last_used = |id: KeyId| {
        let store = store.clone();
        async move { store.api_key(&id).await.unwrap().unwrap().last_used_at }
    };
    store.record_api_key_use(&[]).await.unwrap();
    assert_eq!(last_used(first.id.clone()).await, None);
    store
        .record_api_key_use(&[(first.id.clone(), at(20)), (second.id.clone(), at(5))])
        .await
        .unwrap();
    assert_eq!(last_used(first.id.clone()).await, Some(at(20)));
    assert_eq!(last_used(second.id.clone()).await, Some(at(5)));
    store
        .record_api_key_use(&[(first.id.clone(), at(10))])
        .await
        .unwrap();
    assert_eq!(last_used(first.id.clone()).await, Some(at(20)));
    let late = at(30) + Duration::milliseconds(250);
    store
        .record_api_key_use(&[(first.id.clone(), late), (second.id.clone(), at(4))])
        .await
        .unwrap();
    assert_eq!(last_used(first.id.clone()).await, Some(late));
    assert_eq!(last_used(second.id.clone()).await, Some(at(5)));
}

/// A flush may name more keys than one statement writes: every key gets its
/// time, an older or repeated entry never lowers one, and unknown (deleted)
/// keys are skipped. The same through `add_key_usage`'s last uses.
pub async fn last_uses_of_many_keys_are_all_written(store: Arc<dyn Store>) {
    use assetpool_core::store::{KeyLastUse, UsageBatch, UsageResolution};
    const KEYS: i64 = 620;
    let application = new_application(store.as_ref(), at(0)).await;
    let mut keys = Vec::new();
    for _ in 0..KEYS {
        keys.push(new_key(store.as_ref(), &application.id, at(0)).await.id);
    }
    // In the order the rows are written, so that indices near a multiple of
    // a statement's rows are the keys at its edges.
    keys.sort();
    let time_of = |index: i64| at(10 + index);
    store
        .record_api_key_use(&[(keys[1].clone(), at(10_000))])
        .await
        .unwrap();
    let mut uses: Vec<(KeyId, _)> = (0..KEYS)
        .map(|index| (keys[index as usize].clone(), time_of(index)))
        .collect();
    uses.push((KeyId::from("key_deleted_long_ago"), at(5)));
    // The same key twice in one flush: the later time counts.
    uses.push((keys[0].clone(), at(9_000)));
    uses.push((keys[0].clone(), at(1)));
    uses.reverse();
    store.record_api_key_use(&uses).await.unwrap();
    for (index, id) in keys.iter().enumerate() {
        let expected = match index {
            0 => at(9_000),
            1 => at(10_000),
            _ => time_of(index as i64),
        };
        let last = store.api_key(id).await.unwrap().unwrap().last_used_at;
        assert_eq!(last, Some(expected), "key {index}");
    }

    let batch = UsageBatch {
        last_uses: (0..KEYS)
            .map(|index| KeyLastUse {
                key_id: keys[index as usize].clone(),
                at: at(20_000 + index),
                address: (index != 7).then(|| format!("203.0.113.{}", index % 250)),
            })
            .chain(std::iter::once(KeyLastUse {
                key_id: "key_deleted_long_ago".into(),
                at: at(20_000),
                address: None,
            }))
            .collect(),
        ..Default::default()
    };
    store.add_key_usage(&batch).await.unwrap();
    for (index, id) in (0..KEYS).zip(&keys) {
        let usage = store
            .key_usage(id, UsageResolution::Day, at(0))
            .await
            .unwrap();
        assert_eq!(usage.last_used_at, Some(at(20_000 + index)), "key {index}");
        let address = (index != 7).then(|| format!("203.0.113.{}", index % 250));
        assert_eq!(usage.last_address, address, "key {index}");
        assert_eq!(
            store.api_key(id).await.unwrap().unwrap().last_used_at,
            Some(at(20_000 + index)),
            "key {index}"
        );
    }
}

/// Keys expiring within a period are listed soonest first, without revoked,
/// rotated, unexpiring or already expired ones.
pub async fn keys_expiring_in_a_period_are_listed(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let mut expiring = Vec::new();
    for minutes in [300, 100, 200, 5, 10_000] {
        let mut key = key_record(&application.id, Environment::Production, at(0));
        key.expires_at = Some(at(minutes));
        store.insert_api_key(&key).await.unwrap();
        expiring.push(key);
    }
    let never = key_record(&application.id, Environment::Production, at(0));
    store.insert_api_key(&never).await.unwrap();
    store
        .revoke_api_key(&expiring[2].id, None, at(1))
        .await
        .unwrap();
    let successor = key_record(&application.id, Environment::Production, at(1));
    store
        .rotate_api_key(&expiring[0].id, &successor, at(400), at(1))
        .await
        .unwrap();
    let listed: Vec<KeyId> = store
        .api_keys_expiring(at(10), at(1000))
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id)
        .collect();
    // 300 was rotated (its grace end moved), 200 revoked, 5 before the period, 10,000 after it.
    assert_eq!(listed, vec![expiring[1].id.clone()]);
}

/// Keys are listed a page at a time in (creation time, id) order: each page
/// starts strictly after the last key of the previous one, with no gap and
/// no repeat, also among keys created at the same instant; an environment
/// filter applies within the pages.
pub async fn keys_are_listed_a_page_at_a_time(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let mut expected = Vec::new();
    for (minutes, environment) in [
        (0, Environment::Production),
        (0, Environment::Development),
        (0, Environment::Production),
        (1, Environment::Production),
        (2, Environment::Production),
        (2, Environment::Development),
    ] {
        let key = key_record(&application.id, environment, at(minutes));
        store.insert_api_key(&key).await.unwrap();
        expected.push(key);
    }
    expected.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut seen = Vec::new();
    let mut page = CreationPage {
        after: None,
        limit: 4,
    };
    loop {
        let listed = store.list_api_keys(None, &page).await.unwrap();
        assert!(listed.len() <= 4);
        let Some(last) = listed.last() else { break };
        page.after = Some((last.created_at, last.id.to_string()));
        seen.extend(listed);
    }
    assert_eq!(seen, expected);
    let development: Vec<_> = expected
        .iter()
        .filter(|key| key.environment == Environment::Development)
        .cloned()
        .collect();
    let first = CreationPage {
        after: None,
        limit: 1,
    };
    let listed = store
        .list_api_keys(Some(Environment::Development), &first)
        .await
        .unwrap();
    assert_eq!(listed, development[..1]);
    let rest = CreationPage {
        after: Some((listed[0].created_at, listed[0].id.to_string())),
        limit: 10,
    };
    let listed = store
        .list_api_keys(Some(Environment::Development), &rest)
        .await
        .unwrap();
    assert_eq!(listed, development[1..]);
}
