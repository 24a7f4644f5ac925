//! The web console's sessions: opened with the throttle's attempt taken
//! back, only for an enabled user of the verified password version; read by
//! the hash of their secret with the user and the applications the user
//! owns; touched, ended and pruned. And the console's key lists: one
//! application's keys, and keys filtered by environment, application, state
//! and search.

use crate::limits::throttle_state;
use crate::support::{at, attempt, key_record, new_application, random_hash, user_record};
use assetpool_core::ids::{ApplicationId, SessionId};
use assetpool_core::store::prelude::*;
use assetpool_core::store::{
    ApiKeyRecord, AttemptAdmission, ConsoleSessionOpening, CreationPage, KeyFilter, KeySearch,
    KeyStatusFilter, NewConsoleSession, UserRecord,
};
use assetpool_core::{ApplicationRole, Environment, SecretHash};
use chrono::Duration;
use std::sync::Arc;

/// A session of `user` opened at minute `minutes`, lasting 12 hours.
fn opening(user: &UserRecord, password_version: i64, minutes: i64) -> ConsoleSessionOpening {
    ConsoleSessionOpening {
        session: NewConsoleSession {
            id: SessionId::new(),
            secret_hash: random_hash(),
            user_id: user.id.clone(),
            password_version,
            created_at: at(minutes),
            expires_at: at(minutes) + Duration::hours(12),
        },
        attempt: attempt(&user.email, "10.0.0.1", at(minutes)),
    }
}

/// An opened session is found by its hash with its user and the
/// applications the user owns (not those of which it is a mere member);
/// opening took the sign-in attempt back from the throttle; activity only
/// moves forward; ending it is recorded once.
pub async fn console_sessions_open_read_touch_and_end(store: Arc<dyn Store>) {
    let user = user_record("ada@example.com", at(0));
    store.create_user(&user).await.unwrap();
    let owned = new_application(store.as_ref(), at(0)).await;
    let joined = new_application(store.as_ref(), at(0)).await;
    store
        .set_application_member(&owned.id, &user.id, ApplicationRole::Owner, at(0))
        .await
        .unwrap();
    store
        .set_application_member(&joined.id, &user.id, ApplicationRole::Member, at(0))
        .await
        .unwrap();
    let opening = opening(&user, user.password_version, 1);
    let admitted = store
        .count_login_attempt(&opening.attempt, &|_| None)
        .await
        .unwrap();
    assert!(matches!(admitted, AttemptAdmission::Counted(_)));
    assert!(store.open_console_session(&opening).await.unwrap());
    let state = throttle_state(store.as_ref(), &user.email, "10.0.0.1", 1).await;
    assert_eq!(state.pair.map_or(0, |pair| pair.pending), 0);
    assert_eq!(state.known_since, Some(at(1)));

    let hash = opening.session.secret_hash;
    let found = store.console_session(&hash).await.unwrap().unwrap();
    assert_eq!(found.id, opening.session.id);
    assert_eq!(found.user, user);
    assert_eq!(found.owned_applications, vec![owned.id.clone()]);
    assert_eq!(
        (
            found.created_at,
            found.last_seen_at,
            found.expires_at,
            found.ended_at
        ),
        (at(1), at(1), opening.session.expires_at, None)
    );
    assert!(found.owns(&owned.id) && !found.owns(&joined.id));
    assert_eq!(store.console_session(&random_hash()).await.unwrap(), None);

    store.touch_console_session(&found.id, at(5)).await.unwrap();
    store.touch_console_session(&found.id, at(3)).await.unwrap();
    let touched = store.console_session(&hash).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(5));

    assert!(store.end_console_session(&found.id, at(6)).await.unwrap());
    assert!(!store.end_console_session(&found.id, at(7)).await.unwrap());
    let ended = store.console_session(&hash).await.unwrap().unwrap();
    assert_eq!(ended.ended_at, Some(at(6)));
    assert!(!ended.is_live(at(6), Duration::minutes(30)));
}

/// A session is not opened for a user whose password changed since it was
/// verified, nor for a disabled user; nothing is stored then. Disabling a
/// user ends its sessions.
pub async fn console_sessions_open_only_for_the_verified_enabled_user(store: Arc<dyn Store>) {
    let user = user_record("bob@example.com", at(0));
    store.create_user(&user).await.unwrap();
    store
        .set_password(&user.id, &user.password_hash, at(1))
        .await
        .unwrap();
    let stale = opening(&user, user.password_version, 2);
    assert!(!store.open_console_session(&stale).await.unwrap());
    assert_eq!(
        store
            .console_session(&stale.session.secret_hash)
            .await
            .unwrap(),
        None
    );
    let current = store.user_by_email(&user.email).await.unwrap().unwrap();
    store
        .set_user_disabled(&user.id, true, at(3))
        .await
        .unwrap();
    let disabled = opening(&current, current.password_version, 4);
    assert!(!store.open_console_session(&disabled).await.unwrap());
    store
        .set_user_disabled(&user.id, false, at(5))
        .await
        .unwrap();
    let enabled = opening(&current, current.password_version, 6);
    assert!(store.open_console_session(&enabled).await.unwrap());
    // Disabling the user ends its sessions for good: enabling it again
    // does not bring them back.
    store
        .set_user_disabled(&user.id, true, at(7))
        .await
        .unwrap();
    store
        .set_user_disabled(&user.id, false, at(8))
        .await
        .unwrap();
    let ended = store
        .console_session(&enabled.session.secret_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.ended_at, Some(at(7)));
}

/// Sessions that ended or reached their absolute end before the given time
/// are deleted; others stay.
pub async fn console_sessions_are_pruned_after_their_end(store: Arc<dyn Store>) {
    let user = user_record("cy@example.com", at(0));
    store.create_user(&user).await.unwrap();
    let signed_out = opening(&user, user.password_version, 0);
    let expired = opening(&user, user.password_version, 1);
    let live = opening(&user, user.password_version, 2);
    for session in [&signed_out, &expired, &live] {
        assert!(store.open_console_session(session).await.unwrap());
    }
    store
        .end_console_session(&signed_out.session.id, at(10))
        .await
        .unwrap();
    // Before `live`'s absolute end (minute 2 + 12 h), after `expired`'s.
    let before = at(1) + Duration::hours(12) + Duration::seconds(30);
    assert_eq!(store.prune_console_sessions(before).await.unwrap(), 2);
    let remaining = |hash: SecretHash| {
        let store = Arc::clone(&store);
        async move { store.console_session(&hash).await.unwrap().is_some() }
    };
    assert!(!remaining(signed_out.session.secret_hash).await);
    assert!(!remaining(expired.session.secret_hash).await);
    assert!(remaining(live.session.secret_hash).await);
}

/// The keys of one application, in creation order, a page at a time.
pub async fn list_application_api_keys_lists_one_application(store: Arc<dyn Store>) {
    let mine = new_application(store.as_ref(), at(0)).await;
    let other = new_application(store.as_ref(), at(0)).await;
    let mut expected = Vec::new();
    for minute in [3, 1, 2] {
        let key = key_record(&mine.id, Environment::Production, at(minute));
        store.insert_api_key(&key).await.unwrap();
        expected.push(key);
        let foreign = key_record(&other.id, Environment::Production, at(minute));
        store.insert_api_key(&foreign).await.unwrap();
    }
    expected.sort_by_key(|key| key.created_at);
    let all = store
        .list_application_api_keys(&mine.id, &CreationPage::all())
        .await
        .unwrap();
    assert_eq!(all, expected);
    let first = CreationPage {
        after: None,
        limit: 2,
    };
    let page = store
        .list_application_api_keys(&mine.id, &first)
        .await
        .unwrap();
    assert_eq!(page, expected[..2]);
    let last = &page[1];
    let next = CreationPage {
        after: Some((last.created_at, last.id.to_string())),
        limit: 2,
    };
    let rest = store
        .list_application_api_keys(&mine.id, &next)
        .await
        .unwrap();
    assert_eq!(rest, expected[2..]);
}

/// Keys of two applications at minutes 1 to 12 (names "Shop backend N" to
/// minute 4, then "billing N"; staging every third), in every state at
/// minute 100: revoked (also when expired and disabled), expired (also
/// when disabled), disabled, active until later, rotating, and active.
/// The application of the even minutes, and every key in creation order.
async fn keys_in_every_state(store: &Arc<dyn Store>) -> (ApplicationId, Vec<ApiKeyRecord>) {
    let mine = new_application(store.as_ref(), at(0)).await;
    let other = new_application(store.as_ref(), at(0)).await;
    let mut keys: Vec<ApiKeyRecord> = Vec::new();
    for minute in 1..=12 {
        let application = if minute % 2 == 0 { &mine } else { &other };
        let environment = if minute % 3 == 0 {
            Environment::Staging
        } else {
            Environment::Production
        };
        let mut key = key_record(&application.id, environment, at(minute));
        key.name = if minute <= 4 {
            format!("Shop backend {minute}")
        } else {
            format!("billing {minute}")
        };
        match minute {
            2 => key.revoked_at = Some(at(50)),
            3 => {
                key.revoked_at = Some(at(50));
                key.expires_at = Some(at(60));
                key.disabled_at = Some(at(55));
            }
            4 => key.expires_at = Some(at(99)),
            5 => {
                key.expires_at = Some(at(100));
                key.disabled_at = Some(at(20));
            }
            6 => key.disabled_at = Some(at(20)),
            7 => key.expires_at = Some(at(101)),
            _ => {}
        }
        store.insert_api_key(&key).await.unwrap();
        keys.push(key);
    }
    // A rotated key (within its grace) is in no state's list but its own.
    let rotated = keys[7].clone();
    let successor = key_record(&rotated.application_id, rotated.environment, at(30));
    store
        .rotate_api_key(&rotated.id, &successor, at(200), at(30))
        .await
        .unwrap();
    keys[7] = store.api_key(&rotated.id).await.unwrap().unwrap();
    keys.push(successor);
    keys.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
    (mine.id, keys)
}

/// Asserts that `filter` lists exactly what core's rule admits among
/// `keys`, whole and two at a time.
async fn assert_lists(store: &Arc<dyn Store>, filter: &KeyFilter, keys: &[ApiKeyRecord]) {
    let now = at(100);
    let expected: Vec<&ApiKeyRecord> = keys.iter().filter(|key| filter.admits(key, now)).collect();
    let all = store
        .filter_api_keys(filter, now, &CreationPage::all())
        .await
        .unwrap();
    assert_eq!(all.iter().collect::<Vec<_>>(), expected, "{filter:?}");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = CreationPage { after, limit: 2 };
        let found = store.filter_api_keys(filter, now, &page).await.unwrap();
        after = found
            .last()
            .map(|last| (last.created_at, last.id.to_string()));
        let done = found.len() < 2;
        paged.extend(found);
        if done {
            break;
        }
    }
    assert_eq!(paged, all, "{filter:?}");
}

/// Filtered key lists: each filter (environment, application, state at the
/// given time, search by id or by the start of prefix or name) answers
/// exactly the keys core's rule ([`KeyFilter::admits`]) admits, in creation
/// order, a page at a time.
pub async fn filter_api_keys_filters_searches_and_pages(store: Arc<dyn Store>) {
    let (mine, keys) = keys_in_every_state(&store).await;
    let search = |text: &str| Some(KeySearch::parse(text).unwrap());
    let status = |status| KeyFilter {
        status: Some(status),
        ..KeyFilter::default()
    };
    let by_search = |text: &str| KeyFilter {
        search: search(text),
        ..KeyFilter::default()
    };
    let filters = [
        KeyFilter::default(),
        KeyFilter {
            environment: Some(Environment::Staging),
            ..KeyFilter::default()
        },
        KeyFilter {
            application_id: Some(mine.clone()),
            ..KeyFilter::default()
        },
        status(KeyStatusFilter::Active),
        status(KeyStatusFilter::Revoked),
        status(KeyStatusFilter::Disabled),
        status(KeyStatusFilter::Expired),
        by_search("Shop"),
        by_search("shop"),
        by_search(keys[4].id.as_str()),
        by_search(&keys[5].prefix),
        KeyFilter {
            environment: Some(Environment::Production),
            application_id: Some(mine),
            status: Some(KeyStatusFilter::Active),
            search: search("billing"),
        },
    ];
    for filter in &filters {
        assert_lists(&store, filter, &keys).await;
    }
    let count = |wanted| {
        keys.iter()
            .filter(|key| status(wanted).admits(key, at(100)))
            .count()
    };
    // The states as `ApiKeyRecord::status` decides them.
    assert_eq!(count(KeyStatusFilter::Revoked), 2);
    assert_eq!(count(KeyStatusFilter::Expired), 2);
    assert_eq!(count(KeyStatusFilter::Disabled), 1);
}
