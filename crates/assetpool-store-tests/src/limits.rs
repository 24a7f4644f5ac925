//! Per-key limits (stored with the key, changed by `update_api_key`), quota
//! counters summed across servers, and the shared login-failure counters.

use crate::support::{at, changes_after, key_record, new_application, new_key};
use assetpool_core::limits::{KeyLimits, Quota, QuotaPeriod, RateLimit, RateUnit};
use assetpool_core::store::{
    ApiKeyUpdate, Change, LoginFailure, QuotaDelta, StoreError, ThrottleScope,
};
use assetpool_core::{Environment, Store};
use chrono::Duration;
use std::sync::Arc;

fn limits() -> KeyLimits {
    KeyLimits {
        rate: Some(RateLimit {
            requests: 50,
            unit: RateUnit::Second,
            burst: 100,
        }),
        quota: Some(Quota {
            requests: 100_000,
            period: QuotaPeriod::Day,
        }),
    }
}

/// Limits are stored with a key, and `update_api_key` changes them (or the
/// name) and announces the key in the change feed; unknown ids are `NotFound`.
pub async fn key_limits_are_stored_and_updated(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let mut key = key_record(&application.id, Environment::Production, at(0));
    key.limits = limits();
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(
        store.api_key(&key.id).await.unwrap().unwrap().limits,
        limits()
    );

    let before = store.latest_change_id().await.unwrap();
    let only_quota = KeyLimits {
        rate: None,
        ..limits()
    };
    let update = ApiKeyUpdate {
        name: Some("renamed".to_owned()),
        limits: Some(only_quota),
    };
    let updated = store.update_api_key(&key.id, &update, at(1)).await.unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.limits, only_quota);
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(updated.clone())
    );
    assert!(changes_after(store.as_ref(), before)
        .await
        .contains(&Change::ApiKey {
            key_hash: key.key_hash
        }));
    // Without new limits, the old ones stay.
    let renamed = ApiKeyUpdate {
        name: Some("again".to_owned()),
        limits: None,
    };
    let updated = store
        .update_api_key(&key.id, &renamed, at(2))
        .await
        .unwrap();
    assert_eq!(updated.limits, only_quota);
    assert!(matches!(
        store.update_api_key("key_unknown", &renamed, at(2)).await,
        Err(StoreError::NotFound)
    ));
}

/// Quota counters add up across calls (as several servers flush), per key
/// and period; unknown keys are skipped; old periods are pruned.
pub async fn quota_usage_adds_up_across_flushes(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    let other = new_key(store.as_ref(), &application.id, at(0)).await;
    let delta = |key_id: &str, minutes: i64, requests: u64| QuotaDelta {
        key_id: key_id.to_owned(),
        period_start: at(minutes),
        requests,
    };
    let totals = store
        .add_quota_usage(&[delta(&key.id, 0, 3), delta(&other.id, 0, 1)])
        .await
        .unwrap();
    assert_eq!(totals.len(), 2);
    let totals = store
        .add_quota_usage(&[delta(&key.id, 0, 4), delta("key_unknown", 0, 9)])
        .await
        .unwrap();
    assert_eq!(totals, vec![(delta(&key.id, 0, 4), 7)]);
    // A zero delta reads the total.
    let totals = store
        .add_quota_usage(&[delta(&key.id, 0, 0)])
        .await
        .unwrap();
    assert_eq!(totals[0].1, 7);
    // Another period counts apart.
    let totals = store
        .add_quota_usage(&[delta(&key.id, 60, 2)])
        .await
        .unwrap();
    assert_eq!(totals[0].1, 2);
    assert_eq!(store.prune_quota_usage(at(30)).await.unwrap(), 2);
    let totals = store
        .add_quota_usage(&[delta(&key.id, 0, 0)])
        .await
        .unwrap();
    assert_eq!(totals[0].1, 0);
}

fn failure(account: &str, address: &str, minutes: i64) -> LoginFailure {
    LoginFailure {
        account: account.to_owned(),
        address: address.to_owned(),
        api_key_id: "key_evidence".to_owned(),
        at: at(minutes),
        window_start: at(minutes) - Duration::minutes(15),
    }
}

/// A failure counts against its pair, its address and its account; counters
/// quiet for longer than the window restart at one.
pub async fn login_failures_count_per_pair_address_and_account(store: Arc<dyn Store>) {
    for _ in 0..3 {
        store
            .record_login_failure(&failure("victim@example.com", "10.0.0.1", 0))
            .await
            .unwrap();
    }
    store
        .record_login_failure(&failure("victim@example.com", "10.0.0.2", 1))
        .await
        .unwrap();
    store
        .record_login_failure(&failure("other@example.com", "10.0.0.1", 1))
        .await
        .unwrap();
    let state = store
        .login_throttle_state("victim@example.com", "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(state.pair.unwrap().failures, 3);
    assert_eq!(state.address.unwrap().failures, 4);
    assert_eq!(state.account.unwrap().failures, 4);
    assert_eq!(state.account.unwrap().last_failure, at(1));
    assert_eq!(state.known_since, None);
    let fresh = store
        .login_throttle_state("nobody@example.com", "10.9.9.9")
        .await
        .unwrap();
    assert_eq!(fresh, Default::default());
    // After a quiet window, counting restarts.
    store
        .record_login_failure(&failure("victim@example.com", "10.0.0.1", 30))
        .await
        .unwrap();
    let state = store
        .login_throttle_state("victim@example.com", "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(state.pair.unwrap().failures, 1);
    assert_eq!(state.account.unwrap().failures, 1);
}

/// A success clears its pair only and remembers the address; support staff
/// see the counters with the evidence key and clear an account's; housekeeping
/// prunes quiet counters and old known addresses.
pub async fn login_success_unlock_and_prune(store: Arc<dyn Store>) {
    for address in ["10.0.0.1", "10.0.0.1", "10.0.0.2"] {
        store
            .record_login_failure(&failure("victim@example.com", address, 0))
            .await
            .unwrap();
    }
    store
        .record_login_success("victim@example.com", "10.0.0.1", at(2))
        .await
        .unwrap();
    let state = store
        .login_throttle_state("victim@example.com", "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(state.pair, None);
    assert_eq!(state.account.unwrap().failures, 3);
    assert_eq!(state.known_since, Some(at(2)));

    let entries = store
        .login_throttles(Some("victim@example.com"))
        .await
        .unwrap();
    let scopes: Vec<(ThrottleScope, &str)> = entries
        .iter()
        .map(|entry| (entry.scope, entry.address.as_str()))
        .collect();
    assert!(scopes.contains(&(ThrottleScope::Pair, "10.0.0.2")));
    assert!(scopes.contains(&(ThrottleScope::Account, "")));
    assert!(entries
        .iter()
        .all(|entry| entry.api_key_id.as_deref() == Some("key_evidence")));
    assert_eq!(store.login_throttles(None).await.unwrap().len(), 4);

    assert_eq!(
        store
            .clear_login_throttle("victim@example.com")
            .await
            .unwrap(),
        2
    );
    let state = store
        .login_throttle_state("victim@example.com", "10.0.0.2")
        .await
        .unwrap();
    assert_eq!((state.pair, state.account), (None, None));
    // The per-address counters are not the account's to clear.
    assert!(state.address.is_some());

    let pruned = store.prune_login_throttle(at(20), at(3)).await.unwrap();
    assert_eq!(pruned, 3, "two address counters and one known address");
    assert!(store.login_throttles(None).await.unwrap().is_empty());
}
