//! Scopes of keys, users and sessions: stored as given (a set, the empty
//! set, or none: unrestricted), changed with the change announced, and a
//! narrowing of a user's scopes ending the sessions it does not cover (core's
//! [`assetpool_core::scopes::session_survives`]) in the same transaction.

use crate::support::{
    at, attempt, changes_after, key_record, logged_in, new_application, new_session_with,
    revoked_in_feed, scopes, spend, user_record,
};
use assetpool_core::store::{
    ApiKeyUpdate, Change, NewSession, RefreshOutcome, SessionOpening, StoreError,
};
use assetpool_core::{Environment, ScopeSet, Store};
use std::sync::Arc;

/// A key's scopes are stored as given (the empty set is not "unrestricted"),
/// read back by hash and id, and replaced or removed by an update, which is
/// announced; an update without scopes keeps them.
pub async fn key_scopes_are_stored_and_updated(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let mut key = key_record(&application.id, Environment::Production, at(0));
    key.scopes = Some(scopes("orders:read orders:write"));
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(key.clone())
    );

    let mut empty = key_record(&application.id, Environment::Production, at(0));
    empty.scopes = Some(ScopeSet::empty());
    store.insert_api_key(&empty).await.unwrap();
    let stored = store.api_key(&empty.id).await.unwrap().unwrap();
    assert_eq!(stored.scopes, Some(ScopeSet::empty()));

    let before = store.latest_change_id().await.unwrap();
    let narrow = ApiKeyUpdate {
        scopes: Some(Some(scopes("orders:read"))),
        ..ApiKeyUpdate::default()
    };
    let updated = store.update_api_key(&key.id, &narrow, at(1)).await.unwrap();
    assert_eq!(updated.scopes, Some(scopes("orders:read")));
    assert_eq!(updated.name, key.name);
    assert!(changes_after(store.as_ref(), before)
        .await
        .contains(&Change::ApiKey {
            key_hash: key.key_hash
        }));
    let renamed = ApiKeyUpdate {
        name: Some("renamed".to_owned()),
        ..ApiKeyUpdate::default()
    };
    let updated = store
        .update_api_key(&key.id, &renamed, at(2))
        .await
        .unwrap();
    assert_eq!(updated.scopes, Some(scopes("orders:read")), "kept");
    let unrestricted = ApiKeyUpdate {
        scopes: Some(None),
        ..ApiKeyUpdate::default()
    };
    let updated = store
        .update_api_key(&key.id, &unrestricted, at(3))
        .await
        .unwrap();
    assert_eq!(updated.scopes, None);
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(updated)
    );
}

/// Narrowing a user's scopes revokes, in its transaction, exactly the live
/// sessions granted a scope outside the new set (an unrestricted grant
/// included) and announces them; widening or lifting the restriction
/// revokes nothing. The user is returned as changed; an unknown user is
/// not found.
pub async fn narrowing_a_user_revokes_the_sessions_outside_the_new_set(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let (user, key) = (&alice.user, &alice.key);
    let within = new_session_with(store.as_ref(), user, key, at(1), Some(scopes("read"))).await;
    let beyond =
        new_session_with(store.as_ref(), user, key, at(1), Some(scopes("read write"))).await;
    let nothing = new_session_with(store.as_ref(), user, key, at(1), Some(ScopeSet::empty())).await;
    let before = store.latest_change_id().await.unwrap();

    let (changed, revoked) = store
        .set_user_scopes(&user.id, Some(&scopes("read")), at(2))
        .await
        .unwrap();
    assert_eq!(changed.scopes, Some(scopes("read")));
    assert_eq!(changed.id, user.id);
    assert_eq!(revoked, 2, "the unrestricted session and the wider one");
    let mut announced = revoked_in_feed(store.as_ref(), before).await;
    announced.sort();
    let mut expected = vec![alice.session.id.clone(), beyond.id.clone()];
    expected.sort();
    assert_eq!(announced, expected);
    let stored = store.user_by_email(&user.email).await.unwrap().unwrap();
    assert_eq!(stored.scopes, Some(scopes("read")));
    for live in [&within, &nothing] {
        let renew = spend(live.refresh_hash, &key.application_id, at(3));
        assert!(
            matches!(
                store.spend_refresh_token(&renew).await.unwrap(),
                RefreshOutcome::Renewed(_)
            ),
            "{:?} survives",
            live.scopes
        );
    }

    let before = store.latest_change_id().await.unwrap();
    let (changed, revoked) = store.set_user_scopes(&user.id, None, at(4)).await.unwrap();
    assert_eq!((changed.scopes, revoked), (None, 0));
    assert!(revoked_in_feed(store.as_ref(), before).await.is_empty());
    assert!(matches!(
        store
            .set_user_scopes(&"usr_unknown".into(), None, at(5))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// A session keeps the scopes granted at login: its refresh tokens renew
/// it with them. A session opens only while the user's scopes are still
/// those the grant was decided from.
pub async fn sessions_keep_their_scopes_and_open_only_for_unchanged_user_scopes(
    store: Arc<dyn Store>,
) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = key_record(&application.id, Environment::Production, at(0));
    store.insert_api_key(&key).await.unwrap();
    let mut user = user_record("carol@example.test", at(0));
    user.scopes = Some(scopes("a b"));
    store.create_user(&user).await.unwrap();
    let granted = Some(scopes("a"));
    let session = new_session_with(store.as_ref(), &user, &key, at(0), granted.clone()).await;
    let renew = spend(session.refresh_hash, &application.id, at(1));
    let RefreshOutcome::Renewed(renewed) = store.spend_refresh_token(&renew).await.unwrap() else {
        panic!("the refresh token renews");
    };
    assert_eq!(renewed.scopes, granted);
    assert_eq!(renewed.user.scopes, user.scopes);

    // The user's scopes change while a login's password is being checked.
    store
        .set_user_scopes(&user.id, Some(&scopes("b")), at(2))
        .await
        .unwrap();
    let stale = SessionOpening {
        session: NewSession {
            id: "ses_stale_scopes".into(),
            ..session.clone()
        },
        password_version: user.password_version,
        attempt: attempt(&user.email, "192.0.2.7", at(3)),
        user_scopes: user.scopes.clone(),
    };
    assert!(!store.open_session(&stale).await.unwrap());
    let current = SessionOpening {
        user_scopes: Some(scopes("b")),
        session: NewSession {
            id: "ses_current_scopes".into(),
            refresh_hash: crate::support::random_hash(),
            scopes: Some(scopes("b")),
            ..session
        },
        ..stale
    };
    assert!(store.open_session(&current).await.unwrap());
}
