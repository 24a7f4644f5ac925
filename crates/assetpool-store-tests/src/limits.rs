//! Per-key limits (stored with the key, changed by `update_api_key`), quota
//! counters summed across servers, and the shared login-failure counters.

use crate::support::{
    at, attempt, changes_after, key_record, logged_in, new_application, new_key, random_hash,
};
use assetpool_core::ids::KeyId;
use assetpool_core::limits::{KeyLimits, Quota, QuotaPeriod, RateLimit, RateUnit};
use assetpool_core::store::{
    ApiKeyUpdate, AttemptAdmission, Change, QuotaDelta, SessionOpening, StoreError, ThrottleScope,
    ThrottleState,
};
use assetpool_core::{Environment, Store};
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
        ..ApiKeyUpdate::default()
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
        ..ApiKeyUpdate::default()
    };
    let updated = store
        .update_api_key(&key.id, &renamed, at(2))
        .await
        .unwrap();
    assert_eq!(updated.limits, only_quota);
    assert!(matches!(
        store
            .update_api_key(&"key_unknown".into(), &renamed, at(2))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Quota counters add up across calls (as several servers flush), per key
/// and period; unknown keys are skipped; old periods are pruned.
pub async fn quota_usage_adds_up_across_flushes(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    let other = new_key(store.as_ref(), &application.id, at(0)).await;
    let delta = |key_id: &KeyId, minutes: i64, requests: u64| QuotaDelta {
        key_id: key_id.clone(),
        period_start: at(minutes),
        requests,
    };
    let totals = store
        .add_quota_usage(&[delta(&key.id, 0, 3), delta(&other.id, 0, 1)])
        .await
        .unwrap();
    assert_eq!(totals.len(), 2);
    let totals = store
        .add_quota_usage(&[delta(&key.id, 0, 4), delta(&"key_unknown".into(), 0, 9)])
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

/// Counts an attempt that no decision refuses, and settles it as a failure.
async fn count(store: &dyn Store, account: &str, address: &str, minutes: i64) -> ThrottleState {
    let before = count_in_flight(store, account, address, minutes).await;
    store
        .settle_login_failure(&attempt(account, address, at(minutes)))
        .await
        .unwrap();
    before
}

/// Counts an attempt that no decision refuses, leaving it in flight.
async fn count_in_flight(
    store: &dyn Store,
    account: &str,
    address: &str,
    minutes: i64,
) -> ThrottleState {
    let counted = store
        .count_login_attempt(&attempt(account, address, at(minutes)), &|_| None)
        .await
        .unwrap();
    match counted {
        AttemptAdmission::Counted(before) => before,
        AttemptAdmission::Refused { .. } => panic!("refused without a reason"),
    }
}

/// The counters as an attempt would see them (read by a refusing decision).
pub(crate) async fn throttle_state(
    store: &dyn Store,
    account: &str,
    address: &str,
    minutes: i64,
) -> ThrottleState {
    let seen = std::sync::Mutex::new(None);
    let decide = |state: &ThrottleState| {
        *seen.lock().unwrap() = Some(*state);
        Some(1)
    };
    let refused = store
        .count_login_attempt(&attempt(account, address, at(minutes)), &decide)
        .await
        .unwrap();
    assert_eq!(
        refused,
        AttemptAdmission::Refused {
            retry_after_seconds: 1
        }
    );
    let seen = *seen.lock().unwrap();
    seen.unwrap()
}

/// An attempt counts in flight against its pair, its address and its
/// account, and reports the counters as they were before it; settled as a
/// failure, it counts as one; a refused attempt counts nothing; counters
/// quiet for longer than the window restart at one.
pub async fn login_attempts_count_per_pair_address_and_account(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let before = count_in_flight(store, "victim@example.com", "10.0.0.1", 0).await;
    assert_eq!(before, ThrottleState::default());
    let in_flight = throttle_state(store, "victim@example.com", "10.0.0.1", 0).await;
    let pair = in_flight.pair.unwrap();
    assert_eq!(
        (pair.failures, pair.pending, pair.last_attempt),
        (0, 1, at(0))
    );
    store
        .settle_login_failure(&attempt("victim@example.com", "10.0.0.1", at(0)))
        .await
        .unwrap();
    let settled = throttle_state(store, "victim@example.com", "10.0.0.1", 0).await;
    let pair = settled.pair.unwrap();
    assert_eq!(
        (pair.failures, pair.pending, pair.last_failure),
        (1, 0, at(0))
    );
    for _ in 0..2 {
        count(store, "victim@example.com", "10.0.0.1", 0).await;
    }
    count(store, "victim@example.com", "10.0.0.2", 1).await;
    let before = count(store, "other@example.com", "10.0.0.1", 1).await;
    assert_eq!(before.pair, None);
    assert_eq!(before.address.unwrap().failures, 3);
    let state = throttle_state(store, "victim@example.com", "10.0.0.1", 1).await;
    assert_eq!(state.pair.unwrap().failures, 3);
    assert_eq!(state.address.unwrap().failures, 4);
    assert_eq!(state.account.unwrap().failures, 4);
    assert_eq!(state.account.unwrap().last_failure, at(1));
    assert_eq!(state.known_since, None);
    // The refused look above counted nothing.
    let again = throttle_state(store, "victim@example.com", "10.0.0.1", 1).await;
    assert_eq!(again, state);
    let fresh = throttle_state(store, "nobody@example.com", "10.9.9.9", 1).await;
    assert_eq!(fresh, ThrottleState::default());
    // After a quiet window, counting restarts.
    count(store, "victim@example.com", "10.0.0.1", 30).await;
    let state = throttle_state(store, "victim@example.com", "10.0.0.1", 30).await;
    assert_eq!(state.pair.unwrap().failures, 1);
    assert_eq!(state.account.unwrap().failures, 1);
}

/// Concurrent attempts are decided one after the other: with a limit of five
/// per pair, exactly five of forty simultaneous attempts are counted.
pub async fn concurrent_attempts_are_decided_one_by_one(store: Arc<dyn Store>) {
    let attempts: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let decide = |state: &ThrottleState| {
                    state
                        .pair
                        .filter(|pair| pair.failures + pair.pending >= 5)
                        .map(|_| 1)
                };
                store
                    .count_login_attempt(&attempt("victim@example.com", "10.0.0.1", at(0)), &decide)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut counted = 0;
    for attempt in attempts {
        if matches!(attempt.await.unwrap(), AttemptAdmission::Counted(_)) {
            counted += 1;
        }
    }
    assert_eq!(counted, 5);
    let state = throttle_state(store.as_ref(), "victim@example.com", "10.0.0.1", 0).await;
    assert_eq!(state.pair.unwrap().pending, 5);
    assert_eq!(state.account.unwrap().pending, 5);
    assert_eq!(state.account.unwrap().failures, 0);
}

/// A successful login's session refunds its attempt: its pair is cleared,
/// the address and account lose the failure it counted, and the address is
/// remembered. Support staff see the counters with the evidence key and
/// clear an account's; housekeeping prunes quiet counters and old known
/// addresses.
pub async fn login_success_unlock_and_prune(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "victim@example.com").await;
    store
        .clear_login_throttle("victim@example.com")
        .await
        .unwrap();
    store.prune_login_throttle(at(100), at(100)).await.unwrap();
    for address in ["10.0.0.1", "10.0.0.1", "10.0.0.2"] {
        count(store.as_ref(), "victim@example.com", address, 0).await;
    }
    // A fourth attempt, in flight, then successful.
    count_in_flight(store.as_ref(), "victim@example.com", "10.0.0.1", 1).await;
    let mut session = alice.session.clone();
    session.id = format!("{}_2", session.id).into();
    session.refresh_hash = random_hash();
    let opening = SessionOpening {
        session,
        password_version: alice.user.password_version,
        attempt: attempt("victim@example.com", "10.0.0.1", at(2)),
        user_scopes: None,
    };
    assert!(store.open_session(&opening).await.unwrap());
    let state = throttle_state(store.as_ref(), "victim@example.com", "10.0.0.1", 2).await;
    assert_eq!(state.pair, None);
    let (account, address) = (state.account.unwrap(), state.address.unwrap());
    assert_eq!((account.failures, account.pending), (3, 0));
    assert_eq!((address.failures, address.pending), (2, 0));
    assert_eq!(
        account.last_failure,
        at(0),
        "a success does not move the time of the latest failure"
    );
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
        .all(|entry| entry.api_key_id.as_ref().map(|id| id.as_str()) == Some("key_evidence")));
    assert_eq!(store.login_throttles(None).await.unwrap().len(), 4);

    assert_eq!(
        store
            .clear_login_throttle("victim@example.com")
            .await
            .unwrap(),
        2
    );
    let state = throttle_state(store.as_ref(), "victim@example.com", "10.0.0.2", 2).await;
    assert_eq!((state.pair, state.account), (None, None));
    // The per-address counters are not the account's to clear.
    assert!(state.address.is_some());

    let pruned = store.prune_login_throttle(at(20), at(3)).await.unwrap();
    assert_eq!(pruned, 3, "two address counters and one known address");
    assert!(store.login_throttles(None).await.unwrap().is_empty());
}

/// A login whose password was right but which opened no session (it asked
/// for a scope the user may not have) is taken back as a successful one:
/// its pair is cleared, it is no longer in flight, no failure is counted,
/// and the address is remembered.
pub async fn a_login_refused_for_its_scopes_is_taken_back(store: Arc<dyn Store>) {
    count(store.as_ref(), "dana@example.com", "10.0.0.9", 0).await;
    count_in_flight(store.as_ref(), "dana@example.com", "10.0.0.9", 1).await;
    store
        .settle_login_refused(&attempt("dana@example.com", "10.0.0.9", at(1)))
        .await
        .unwrap();
    let state = throttle_state(store.as_ref(), "dana@example.com", "10.0.0.9", 2).await;
    assert_eq!(state.pair, None);
    let (account, address) = (state.account.unwrap(), state.address.unwrap());
    assert_eq!((account.failures, account.pending), (1, 0));
    assert_eq!((address.failures, address.pending), (1, 0));
    assert_eq!(state.known_since, Some(at(1)));
}
