//! Signing keys: the first key is inserted once even under concurrency,
//! rotation retires the active key while keeping exactly one active, and
//! resealing rewrites key material all or nothing.

use crate::support::{at, changes_after};
use assetpool_core::ids::SigningKeyId;
use assetpool_core::service::new_signing_key_record;
use assetpool_core::store::{Change, ResealedSigningKey, SigningKeyRecord, StoreError};
use assetpool_core::token::KeyRing;
use assetpool_core::{KeySealer, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;

fn signing_key(created_at: DateTime<Utc>) -> SigningKeyRecord {
    new_signing_key_record(created_at, &KeySealer::plain()).unwrap()
}

fn count_signing_key_changes(changes: &[Change]) -> usize {
    changes
        .iter()
        .filter(|change| **change == Change::SigningKeys)
        .count()
}

/// The first key is stored (unchanged) and announced; a second "first" key is
/// refused without being stored or announced.
pub async fn first_signing_key_is_inserted_once(store: Arc<dyn Store>) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let first = signing_key(at(0));
    assert!(store.insert_first_signing_key(&first).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), vec![first.clone()]);
    assert_eq!(
        count_signing_key_changes(&changes_after(store.as_ref(), 0).await),
        1
    );
    let before = store.latest_change_id().await.unwrap();
    assert!(!store
        .insert_first_signing_key(&signing_key(at(1)))
        .await
        .unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), vec![first]);
    assert!(changes_after(store.as_ref(), before).await.is_empty());
}

/// Ten servers starting at once on an empty store agree on one first key.
pub async fn concurrent_first_signing_keys_insert_one(store: Arc<dyn Store>) {
    let start = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        let start = start.clone();
        let key = signing_key(at(0));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let inserted = store.insert_first_signing_key(&key).await.unwrap();
            (key, inserted)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (key, inserted) = task.await.unwrap();
        if inserted {
            winners.push(key);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one first key");
    assert_eq!(store.signing_keys().await.unwrap(), winners);
}

/// Rotation retires the active key until the given instant, stores the new
/// one as the only active key, lists keys newest first, and is announced.
pub async fn rotate_signing_key_retires_the_active_key(store: Arc<dyn Store>) {
    let first = signing_key(at(0));
    assert!(store.insert_first_signing_key(&first).await.unwrap());
    let second = signing_key(at(10));
    let before = store.latest_change_id().await.unwrap();
    store.rotate_signing_key(&second, at(100)).await.unwrap();
    assert!(count_signing_key_changes(&changes_after(store.as_ref(), before).await) >= 1);
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], second);
    assert_eq!(keys[1].kid, first.kid);
    assert_eq!(keys[1].sealed_private_key, first.sealed_private_key);
    assert_eq!(keys[1].public_key, first.public_key);
    let retired_at = keys[1].retired_at.expect("the old key is retired");
    assert!(retired_at >= first.created_at && retired_at <= second.created_at);
    assert_eq!(keys[1].retires_at, Some(at(100)));

    let third = signing_key(at(20));
    let before = store.latest_change_id().await.unwrap();
    store.rotate_signing_key(&third, at(200)).await.unwrap();
    assert!(count_signing_key_changes(&changes_after(store.as_ref(), before).await) >= 1);
    let keys = store.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
    assert_eq!(
        kids,
        [third.kid.as_str(), second.kid.as_str(), first.kid.as_str()]
    );
    let active: Vec<&str> = keys
        .iter()
        .filter(|key| key.retired_at.is_none())
        .map(|key| key.kid.as_str())
        .collect();
    assert_eq!(active, [third.kid.as_str()]);
    assert_eq!(keys[0].retires_at, None);
    assert_eq!(keys[1].retires_at, Some(at(200)));
    assert_eq!(
        keys[2].retires_at,
        Some(at(100)),
        "an older retirement is kept"
    );

    // What a server builds from the stored keys.
    let ring = KeyRing::from_records(&keys, &KeySealer::plain(), at(50)).unwrap();
    assert_eq!(ring.active_kid(), Some(third.kid.as_str()));
    assert_eq!(ring.published().len(), 3);
    let ring = KeyRing::from_records(&keys, &KeySealer::plain(), at(150)).unwrap();
    assert_eq!(ring.published().len(), 2);
}

/// Resealing replaces each key's sealed value in one transaction, only where
/// it still holds the value it was read with, and announces nothing.
pub async fn reseal_signing_keys_is_all_or_nothing(store: Arc<dyn Store>) {
    let first = signing_key(at(0));
    assert!(store.insert_first_signing_key(&first).await.unwrap());
    let second = signing_key(at(100));
    store.rotate_signing_key(&second, at(200)).await.unwrap();
    let resealed = |key: &SigningKeyRecord, previous: &str, sealed: &str| ResealedSigningKey {
        kid: key.kid.clone(),
        previous: previous.to_owned(),
        sealed: sealed.to_owned(),
    };
    let stored = store.signing_keys().await.unwrap();
    let before = store.latest_change_id().await.unwrap();

    // One stale value: nothing is written.
    let stale = [
        resealed(
            &second,
            &second.sealed_private_key,
            "xchacha20poly1305:second",
        ),
        resealed(
            &first,
            "plain:not-what-is-stored",
            "xchacha20poly1305:first",
        ),
    ];
    assert!(matches!(
        store.reseal_signing_keys(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    let unknown = [ResealedSigningKey {
        kid: "sig_unknown".into(),
        previous: "plain:x".to_owned(),
        sealed: "xchacha20poly1305:x".to_owned(),
    }];
    assert!(matches!(
        store.reseal_signing_keys(&unknown).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.signing_keys().await.unwrap(), stored);

    let both = [
        resealed(
            &second,
            &second.sealed_private_key,
            "xchacha20poly1305:second",
        ),
        resealed(&first, &first.sealed_private_key, "xchacha20poly1305:first"),
    ];
    store.reseal_signing_keys(&both).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    let sealed: Vec<&str> = keys
        .iter()
        .map(|key| key.sealed_private_key.as_str())
        .collect();
    assert_eq!(
        sealed,
        ["xchacha20poly1305:second", "xchacha20poly1305:first"]
    );
    // Everything else is unchanged.
    for (key, before) in keys.iter().zip(&stored) {
        let mut expected = before.clone();
        expected.sealed_private_key = key.sealed_private_key.clone();
        assert_eq!(key, &expected);
    }
    assert_eq!(keys[1].retires_at, Some(at(200)));
    assert!(changes_after(store.as_ref(), before).await.is_empty());
    // A second run with the old values is refused: they changed.
    assert!(matches!(
        store.reseal_signing_keys(&both).await,
        Err(StoreError::Conflict(_))
    ));
}

/// Revoking takes a retired key out of the ring at once and announces it;
/// the active key and unknown keys are refused, writing nothing.
pub async fn revoke_signing_key_refuses_the_active_key_and_announces(store: Arc<dyn Store>) {
    let first = signing_key(at(0));
    assert!(store.insert_first_signing_key(&first).await.unwrap());
    assert!(matches!(
        store.revoke_signing_key(&first.kid, at(5)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .revoke_signing_key(&SigningKeyId::from("sk_unknown"), at(5))
            .await,
        Err(StoreError::NotFound)
    ));
    let second = signing_key(at(10));
    store.rotate_signing_key(&second, at(100)).await.unwrap();
    let before = store.latest_change_id().await.unwrap();
    let revoked = store.revoke_signing_key(&first.kid, at(20)).await.unwrap();
    assert_eq!(revoked.retires_at, Some(at(20)));
    assert_eq!(
        count_signing_key_changes(&changes_after(store.as_ref(), before).await),
        1
    );
    let keys = store.signing_keys().await.unwrap();
    let ring = KeyRing::from_records(&keys, &KeySealer::plain(), at(21)).unwrap();
    assert!(!ring.verifies(first.kid.as_str()));
    assert!(ring.verifies(second.kid.as_str()));
    assert_eq!(ring.active_kid(), Some(second.kid.as_str()));
}
