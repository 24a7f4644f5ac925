//! Users: creation, look-up and listing, password changes and disabling, and
//! their effect on the user's sessions.

use crate::support::{
    at, attempt, changes_after, logged_in, new_session, new_user, random_hash, revoked_at,
    revoked_in_feed, sorted, spend, user_record,
};
use assetpool_core::store::prelude::*;
use assetpool_core::store::{
    CreationPage, NewSession, RefreshOutcome, SessionOpening, StoreError, UserRecord,
};
use std::sync::Arc;

/// A user is found by email once created; listing is oldest first.
pub async fn users_are_created_found_and_listed(store: Arc<dyn Store>) {
    assert!(store
        .list_users(&CreationPage::all())
        .await
        .unwrap()
        .is_empty());
    let mut admin = user_record("admin@example.test", at(20));
    admin.admin = true;
    store.create_user(&admin).await.unwrap();
    let mut disabled = user_record("disabled@example.test", at(10));
    disabled.disabled = true;
    store.create_user(&disabled).await.unwrap();
    let plain = new_user(store.as_ref(), "plain@example.test", at(30)).await;
    assert_eq!(
        store.user_by_email("admin@example.test").await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.user_by_email("disabled@example.test").await.unwrap(),
        Some(disabled.clone())
    );
    assert_eq!(
        store.user_by_email("nobody@example.test").await.unwrap(),
        None
    );
    assert_eq!(
        store.list_users(&CreationPage::all()).await.unwrap(),
        vec![disabled, admin, plain]
    );
}

/// An email belongs to one user.
pub async fn duplicate_email_conflicts(store: Arc<dyn Store>) {
    let first = new_user(store.as_ref(), "taken@example.test", at(0)).await;
    let second = user_record("taken@example.test", at(1));
    assert!(matches!(
        store.create_user(&second).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.list_users(&CreationPage::all()).await.unwrap(),
        vec![first]
    );
}

async fn password_hash_of(store: &dyn Store, user: &UserRecord) -> String {
    store
        .user_by_email(&user.email)
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

/// Setting a password replaces the hash and revokes (and announces) every live
/// session of the user, and only of that user.
pub async fn set_password_revokes_live_sessions(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let second = new_session(store.as_ref(), &alice.user, &alice.key, at(1)).await;
    let bob = logged_in(store.as_ref(), "bob@example.test").await;
    let before = store.latest_change_id().await.unwrap();
    store
        .set_password(&alice.user.id, "$argon2id$new", at(10))
        .await
        .unwrap();
    assert_eq!(
        password_hash_of(store.as_ref(), &alice.user).await,
        "$argon2id$new"
    );
    let expected = sorted([&alice.session.id, &second.id]);
    assert_eq!(revoked_at(store.as_ref(), at(11)).await, expected);
    let mut announced = revoked_in_feed(store.as_ref(), before).await;
    announced.sort();
    assert_eq!(announced, expected);
    let refresh = spend(
        alice.session.refresh_hash,
        &alice.key.application_id,
        at(12),
    );
    assert_eq!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Invalid
    );
    let refresh = spend(bob.session.refresh_hash, &bob.key.application_id, at(12));
    assert!(matches!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
}

/// Upgrading a hash after a login keeps every session and announces nothing.
pub async fn upgrade_password_hash_keeps_sessions(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let before = store.latest_change_id().await.unwrap();
    assert!(store
        .upgrade_password_hash(
            &alice.user.id,
            alice.user.password_version,
            "$argon2id$stronger"
        )
        .await
        .unwrap());
    assert_eq!(
        password_hash_of(store.as_ref(), &alice.user).await,
        "$argon2id$stronger"
    );
    assert!(revoked_at(store.as_ref(), at(1)).await.is_empty());
    assert!(changes_after(store.as_ref(), before).await.is_empty());
    let refresh = spend(alice.session.refresh_hash, &alice.key.application_id, at(2));
    assert!(matches!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
}

/// A password change advances the password version; a re-hash keeps it and
/// is written only over the version it verified: once the password was
/// changed, a hash of the old password is never written back.
pub async fn upgrade_password_hash_never_replaces_a_changed_password(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let version = alice.user.password_version;
    assert!(store
        .upgrade_password_hash(&alice.user.id, version, "$argon2id$same-password-rehashed")
        .await
        .unwrap());
    let stored = store
        .user_by_email(&alice.user.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.password_version, version,
        "a re-hash keeps the version"
    );
    store
        .set_password(&alice.user.id, "$argon2id$new-password", at(1))
        .await
        .unwrap();
    let stored = store
        .user_by_email(&alice.user.email)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.password_version > version);
    assert!(!store
        .upgrade_password_hash(&alice.user.id, version, "$argon2id$old-password-rehashed")
        .await
        .unwrap());
    assert_eq!(
        password_hash_of(store.as_ref(), &alice.user).await,
        "$argon2id$new-password"
    );
}

/// A session opens only while the user's password is of the verified
/// version, the user is enabled and the key not revoked: a password change,
/// a disable or a revocation that landed first wins, and nothing is written.
/// A re-hash does not stop it.
pub async fn sessions_open_only_for_an_unchanged_enabled_user(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let opening = |password_version: i64, minutes| SessionOpening {
        session: NewSession {
            id: format!("ses_late_{minutes}").into(),
            refresh_hash: random_hash(),
            created_at: at(minutes),
            ..alice.session.clone()
        },
        password_version,
        attempt: attempt(&alice.user.email, "192.0.2.9", at(minutes)),
        user_scopes: None,
    };
    let version = alice.user.password_version;
    store
        .upgrade_password_hash(&alice.user.id, version, "$argon2id$rehashed")
        .await
        .unwrap();
    assert!(store.open_session(&opening(version, 1)).await.unwrap());
    store
        .set_password(&alice.user.id, "$argon2id$new-password", at(1))
        .await
        .unwrap();
    let stale = opening(version, 2);
    assert!(!store.open_session(&stale).await.unwrap());
    let refresh = spend(stale.session.refresh_hash, &alice.key.application_id, at(3));
    assert_eq!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Invalid,
        "nothing was stored"
    );
    let changed = store
        .user_by_email(&alice.user.email)
        .await
        .unwrap()
        .unwrap()
        .password_version;
    assert!(store.open_session(&opening(changed, 4)).await.unwrap());
    store
        .set_user_disabled(&alice.user.id, true, at(5))
        .await
        .unwrap();
    assert!(!store.open_session(&opening(changed, 6)).await.unwrap());

    // A key revoked while its login was being checked opens nothing.
    let bob = logged_in(store.as_ref(), "bob@example.test").await;
    store
        .revoke_api_key(&bob.key.id, None, at(7))
        .await
        .unwrap();
    let late = SessionOpening {
        session: NewSession {
            id: "ses_after_revocation".into(),
            refresh_hash: random_hash(),
            ..bob.session.clone()
        },
        password_version: bob.user.password_version,
        attempt: attempt(&bob.user.email, "192.0.2.9", at(8)),
        user_scopes: None,
    };
    assert!(!store.open_session(&late).await.unwrap());
}

/// Disabling revokes (and announces) the user's sessions; enabling revokes nothing.
pub async fn disabling_a_user_revokes_sessions_and_enabling_does_not(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let bob = logged_in(store.as_ref(), "bob@example.test").await;
    let before = store.latest_change_id().await.unwrap();
    store
        .set_user_disabled(&alice.user.id, true, at(10))
        .await
        .unwrap();
    let stored = store
        .user_by_email(&alice.user.email)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.disabled);
    assert_eq!(
        revoked_at(store.as_ref(), at(11)).await,
        sorted([&alice.session.id])
    );
    assert_eq!(
        revoked_in_feed(store.as_ref(), before).await,
        vec![alice.session.id.clone()]
    );

    store
        .set_user_disabled(&alice.user.id, false, at(20))
        .await
        .unwrap();
    let stored = store
        .user_by_email(&alice.user.email)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.disabled);
    let session = new_session(store.as_ref(), &stored, &alice.key, at(21)).await;
    let before = store.latest_change_id().await.unwrap();
    store
        .set_user_disabled(&alice.user.id, false, at(22))
        .await
        .unwrap();
    assert!(revoked_in_feed(store.as_ref(), before).await.is_empty());
    assert_eq!(
        revoked_at(store.as_ref(), at(23)).await,
        sorted([&alice.session.id])
    );
    let refresh = spend(session.refresh_hash, &alice.key.application_id, at(24));
    assert!(matches!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
    let refresh = spend(bob.session.refresh_hash, &bob.key.application_id, at(24));
    assert!(matches!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
}

/// Changing an unknown user is `NotFound`, never a silent success.
pub async fn unknown_users_are_not_found(store: Arc<dyn Store>) {
    assert!(matches!(
        store
            .set_password(&"usr_unknown".into(), "$argon2id$x", at(0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_user_disabled(&"usr_unknown".into(), true, at(0))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Users are listed a page at a time in (creation time, id) order.
pub async fn users_are_listed_a_page_at_a_time(store: Arc<dyn Store>) {
    let mut expected = Vec::new();
    for (index, minutes) in [3, 1, 1, 2, 1].into_iter().enumerate() {
        expected.push(
            new_user(
                store.as_ref(),
                &format!("user{index}@example.test"),
                at(minutes),
            )
            .await,
        );
    }
    expected.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut seen = Vec::new();
    let mut page = CreationPage {
        after: None,
        limit: 2,
    };
    loop {
        let listed = store.list_users(&page).await.unwrap();
        assert!(listed.len() <= 2);
        let Some(last) = listed.last() else { break };
        page.after = Some((last.created_at, last.id.to_string()));
        seen.extend(listed);
    }
    let emails = |users: &[UserRecord]| {
        users
            .iter()
            .map(|user| user.email.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(emails(&seen), emails(&expected));
}
