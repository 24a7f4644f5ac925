//! Sessions and refresh tokens: single-use spending (also under concurrency),
//! reuse detection, logout, and the list of revoked sessions.

use crate::support::{
    at, changes_after, logged_in, new_application, new_key, new_session, random_hash, revoked_at,
    revoked_in_feed, sorted, spend, user_record, ACCESS_MINUTES, REFRESH_DAYS,
};
use assetpool_core::store::prelude::*;
use assetpool_core::store::{Change, RefreshOutcome, RenewedSession, RevokedSession};
use chrono::Duration;
use std::sync::Arc;

/// A live refresh token renews its session once, returning the user; its
/// successor renews in turn.
pub async fn refresh_renews_the_session(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application_id = alice.key.application_id.clone();
    let first = spend(alice.session.refresh_hash, &application_id, at(50));
    let renewed = RefreshOutcome::Renewed(RenewedSession {
        session_id: alice.session.id.clone(),
        user: alice.user.clone(),
        api_key_id: alice.key.id.clone(),
        scopes: None,
    });
    assert_eq!(store.spend_refresh_token(&first).await.unwrap(), renewed);
    let second = spend(first.new_refresh_hash, &application_id, at(100));
    assert_eq!(store.spend_refresh_token(&second).await.unwrap(), renewed);
    assert!(revoked_at(store.as_ref(), at(100)).await.is_empty());
}

/// Presenting a spent token again reports reuse and revokes the whole session:
/// it is listed and announced, and its newest token no longer renews.
pub async fn reused_refresh_token_revokes_the_session(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application_id = alice.key.application_id.clone();
    let first = spend(alice.session.refresh_hash, &application_id, at(10));
    assert!(matches!(
        store.spend_refresh_token(&first).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
    let before = store.latest_change_id().await.unwrap();
    let replay = spend(alice.session.refresh_hash, &application_id, at(20));
    let reused = RefreshOutcome::Reused {
        session_id: alice.session.id.clone(),
    };
    assert_eq!(store.spend_refresh_token(&replay).await.unwrap(), reused);
    let revoked = store.revoked_sessions(at(21)).await.unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].session_id, alice.session.id);
    // Covers the access token issued by the renewal at minute 10.
    assert!(revoked[0].until >= at(10 + ACCESS_MINUTES));
    let announced: Vec<Change> = changes_after(store.as_ref(), before).await;
    assert!(announced.iter().any(|change| matches!(
        change,
        Change::SessionRevoked { session_id, until }
            if *session_id == alice.session.id && *until >= at(10 + ACCESS_MINUTES)
    )));
    let successor = spend(first.new_refresh_hash, &application_id, at(22));
    assert_eq!(
        store.spend_refresh_token(&successor).await.unwrap(),
        RefreshOutcome::Invalid
    );
    // A spent token stays a reused one; the session is announced only once.
    let again = spend(alice.session.refresh_hash, &application_id, at(23));
    assert_eq!(store.spend_refresh_token(&again).await.unwrap(), reused);
    assert_eq!(
        revoked_in_feed(store.as_ref(), before).await,
        vec![alice.session.id.clone()]
    );
}

/// Unknown tokens, tokens presented with another application's key and
/// expired tokens renew nothing.
pub async fn refresh_refuses_unknown_foreign_and_expired_tokens(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application_id = alice.key.application_id.clone();
    let unknown = spend(random_hash(), &application_id, at(1));
    assert_eq!(
        store.spend_refresh_token(&unknown).await.unwrap(),
        RefreshOutcome::Invalid
    );
    let other_application = new_application(store.as_ref(), at(0)).await;
    new_key(store.as_ref(), &other_application.id, at(0)).await;
    let foreign = spend(alice.session.refresh_hash, &other_application.id, at(1));
    assert_eq!(
        store.spend_refresh_token(&foreign).await.unwrap(),
        RefreshOutcome::Invalid
    );

    let expiry = at(0) + Duration::days(REFRESH_DAYS);
    let expiring = new_session(store.as_ref(), &alice.user, &alice.key, at(0)).await;
    let late = spend(expiring.refresh_hash, &application_id, expiry);
    assert_eq!(
        store.spend_refresh_token(&late).await.unwrap(),
        RefreshOutcome::Invalid
    );
    let later = spend(
        expiring.refresh_hash,
        &application_id,
        expiry + Duration::days(1),
    );
    assert_eq!(
        store.spend_refresh_token(&later).await.unwrap(),
        RefreshOutcome::Invalid
    );
    // Just before expiry the same kind of token still renews.
    let in_time = spend(
        alice.session.refresh_hash,
        &application_id,
        expiry - Duration::minutes(1),
    );
    assert!(matches!(
        store.spend_refresh_token(&in_time).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
}

/// A disabled user's refresh token renews nothing.
pub async fn refresh_refuses_disabled_users(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    let user = user_record("disabled@example.test", at(0));
    store.create_user(&user).await.unwrap();
    let session = new_session(store.as_ref(), &user, &key, at(0)).await;
    store
        .set_user_disabled(&user.id, true, at(1))
        .await
        .unwrap();
    let refresh = spend(session.refresh_hash, &application.id, at(1));
    assert_eq!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Invalid
    );
}

/// Fifty concurrent presentations of one token: exactly one renews, every
/// other one is reported as reuse, and the session ends up revoked (once).
pub async fn concurrent_spends_renew_exactly_once(store: Arc<dyn Store>) {
    const SPENDERS: usize = 50;
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let start = Arc::new(tokio::sync::Barrier::new(SPENDERS));
    let mut tasks = Vec::new();
    for _ in 0..SPENDERS {
        let store = store.clone();
        let start = start.clone();
        let presented = spend(alice.session.refresh_hash, &alice.key.application_id, at(5));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store.spend_refresh_token(&presented).await.unwrap()
        }));
    }
    let (mut renewed, mut reused, mut other) = (0, 0, Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            RefreshOutcome::Renewed(_) => renewed += 1,
            RefreshOutcome::Reused { session_id } if session_id == alice.session.id => reused += 1,
            outcome => other.push(outcome),
        }
    }
    assert_eq!(renewed, 1, "exactly one renewal");
    assert_eq!(
        (reused, other),
        (SPENDERS - 1, Vec::new()),
        "every other presentation is reuse"
    );
    assert_eq!(
        revoked_at(store.as_ref(), at(6)).await,
        sorted([&alice.session.id])
    );
    assert_eq!(
        revoked_in_feed(store.as_ref(), 0).await,
        vec![alice.session.id.clone()],
        "the revocation is announced once"
    );
}

/// Logout revokes a live session once, announcing it until its tokens expire.
pub async fn revoke_session_reports_whether_it_revoked(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let before = store.latest_change_id().await.unwrap();
    assert!(store
        .revoke_session(&alice.session.id, at(5))
        .await
        .unwrap());
    assert_eq!(
        changes_after(store.as_ref(), before).await,
        vec![Change::SessionRevoked {
            session_id: alice.session.id.clone(),
            until: alice.session.access_expires_at,
        }]
    );
    let before = store.latest_change_id().await.unwrap();
    assert!(!store
        .revoke_session(&alice.session.id, at(6))
        .await
        .unwrap());
    assert!(!store
        .revoke_session(&"ses_unknown".into(), at(6))
        .await
        .unwrap());
    assert!(revoked_in_feed(store.as_ref(), before).await.is_empty());
    let refresh = spend(alice.session.refresh_hash, &alice.key.application_id, at(7));
    assert_eq!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Invalid
    );
}

/// A revoked session is listed until its latest access token expires (a
/// renewal moves that later), then no more; live sessions are never listed.
pub async fn revoked_sessions_lists_sessions_until_their_tokens_expire(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let renewed = new_session(store.as_ref(), &alice.user, &alice.key, at(0)).await;
    new_session(store.as_ref(), &alice.user, &alice.key, at(0)).await;
    let renewal = spend(renewed.refresh_hash, &alice.key.application_id, at(30));
    assert!(matches!(
        store.spend_refresh_token(&renewal).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
    assert!(store
        .revoke_session(&alice.session.id, at(40))
        .await
        .unwrap());
    assert!(store.revoke_session(&renewed.id, at(40)).await.unwrap());

    let mut listed = store.revoked_sessions(at(41)).await.unwrap();
    listed.sort_by_key(|revoked| revoked.until);
    assert_eq!(
        listed,
        vec![
            RevokedSession {
                session_id: alice.session.id.clone(),
                until: at(ACCESS_MINUTES),
            },
            RevokedSession {
                session_id: renewed.id.clone(),
                until: at(30 + ACCESS_MINUTES),
            },
        ]
    );
    let before_first_expiry = at(ACCESS_MINUTES) - Duration::milliseconds(1);
    assert_eq!(
        revoked_at(store.as_ref(), before_first_expiry).await,
        sorted([&alice.session.id, &renewed.id])
    );
    assert_eq!(
        revoked_at(store.as_ref(), at(ACCESS_MINUTES)).await,
        sorted([&renewed.id])
    );
    assert!(revoked_at(store.as_ref(), at(30 + ACCESS_MINUTES))
        .await
        .is_empty());
}
