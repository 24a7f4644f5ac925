//! A key's lifecycle after its creation: disabling and enabling (announced
//! to every server, suspending the refresh of the sessions opened through
//! it), and changes of its expiry, metadata, owner and allow-list.

use crate::support::{
    at, changes_after, key_record, logged_in, new_application, new_key, new_session, new_user,
    revoked_at, spend,
};
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::key_metadata::KeyMetadata;
use assetpool_core::store::{ApiKeyUpdate, Change, RefreshOutcome, StoreError};
use assetpool_core::{ApiKeyStatus, Environment, Store};
use std::sync::Arc;

/// Disabling stamps the key, announces it twice (the key, for caches; the
/// disabled set, for tokens) and lists it among the disabled keys; disabling
/// again keeps the first time; enabling clears it and is announced too.
pub async fn disabling_and_enabling_a_key_is_announced(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    let other = new_key(store.as_ref(), &application.id, at(0)).await;
    assert!(store.disabled_api_keys().await.unwrap().is_empty());
    let before = store.latest_change_id().await.unwrap();
    let disabled = store
        .set_api_key_disabled(&key.id, true, at(1))
        .await
        .unwrap();
    assert_eq!(disabled.disabled_at, Some(at(1)));
    assert_eq!(disabled.status(at(2)), ApiKeyStatus::Disabled);
    assert_eq!(
        store.api_key(&key.id).await.unwrap(),
        Some(disabled.clone())
    );
    assert_eq!(
        changes_after(store.as_ref(), before).await,
        [
            Change::ApiKey {
                key_hash: key.key_hash
            },
            Change::KeyDisabled {
                key_id: key.id.clone(),
                disabled: true
            },
        ]
    );
    assert_eq!(
        store.disabled_api_keys().await.unwrap(),
        std::slice::from_ref(&key.id)
    );
    let again = store
        .set_api_key_disabled(&key.id, true, at(5))
        .await
        .unwrap();
    assert_eq!(again.disabled_at, Some(at(1)));

    let before = store.latest_change_id().await.unwrap();
    let enabled = store
        .set_api_key_disabled(&key.id, false, at(6))
        .await
        .unwrap();
    assert_eq!(enabled.disabled_at, None);
    assert_eq!(enabled.status(at(7)), ApiKeyStatus::Active);
    assert!(changes_after(store.as_ref(), before)
        .await
        .contains(&Change::KeyDisabled {
            key_id: key.id.clone(),
            disabled: false
        }));
    assert!(store.disabled_api_keys().await.unwrap().is_empty());
    assert_eq!(store.api_key(&other.id).await.unwrap(), Some(other));
}

/// A revoked key can be neither disabled nor enabled; revoking a disabled
/// key takes it out of the disabled keys (its sessions are revoked instead);
/// an unknown key is not found.
pub async fn revoked_keys_are_not_disabled_or_enabled(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    store
        .set_api_key_disabled(&key.id, true, at(1))
        .await
        .unwrap();
    let revoked = store.revoke_api_key(&key.id, None, at(2)).await.unwrap();
    assert_eq!(revoked.status(at(3)), ApiKeyStatus::Revoked);
    assert!(store.disabled_api_keys().await.unwrap().is_empty());
    for disabled in [true, false] {
        assert!(matches!(
            store.set_api_key_disabled(&key.id, disabled, at(3)).await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert!(matches!(
        store
            .set_api_key_disabled(&"key_unknown".into(), true, at(3))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// While the key a session was opened through is disabled, its refresh
/// token is refused and stays unspent, whichever key of the application
/// presents it; once enabled, it renews, naming that key.
pub async fn refresh_waits_while_the_session_key_is_disabled(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application_id = alice.key.application_id.clone();
    store
        .set_api_key_disabled(&alice.key.id, true, at(1))
        .await
        .unwrap();
    let refused = spend(alice.session.refresh_hash, &application_id, at(2));
    assert_eq!(
        store.spend_refresh_token(&refused).await.unwrap(),
        RefreshOutcome::Invalid
    );
    store
        .set_api_key_disabled(&alice.key.id, false, at(3))
        .await
        .unwrap();
    let renewed = spend(alice.session.refresh_hash, &application_id, at(4));
    match store.spend_refresh_token(&renewed).await.unwrap() {
        RefreshOutcome::Renewed(session) => {
            assert_eq!(session.session_id, alice.session.id);
            assert_eq!(session.api_key_id, alice.key.id);
        }
        other => panic!("expected a renewal, got {other:?}"),
    }
}

/// Revoking one key of an application whose other key is only disabled
/// leaves the sessions opened through the disabled key (an enable brings
/// them back); revoking that one too ends them.
pub async fn a_disabled_key_keeps_its_application_sessions(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let disabled = new_key(store.as_ref(), &application.id, at(0)).await;
    let revoked = new_key(store.as_ref(), &application.id, at(0)).await;
    let user = new_user(store.as_ref(), "bob@example.test", at(0)).await;
    let session = new_session(store.as_ref(), &user, &disabled, at(0)).await;
    store
        .set_api_key_disabled(&disabled.id, true, at(1))
        .await
        .unwrap();
    store
        .revoke_api_key(&revoked.id, None, at(2))
        .await
        .unwrap();
    assert!(revoked_at(store.as_ref(), at(3)).await.is_empty());
    store
        .revoke_api_key(&disabled.id, None, at(4))
        .await
        .unwrap();
    assert_eq!(revoked_at(store.as_ref(), at(5)).await, [session.id]);
}

/// An update stores the expiry, metadata, owner and allow-list it names and
/// keeps the rest; `Some(None)` clears. The expiry of a rotated or revoked
/// key cannot change (`Conflict`, nothing written).
pub async fn key_updates_store_expiry_metadata_owner_and_allow_list(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    let metadata = KeyMetadata::parse(r#"{"team":"billing","tier":2}"#).unwrap();
    let networks = AllowedNetworks::parse(&["203.0.113.0/24", "2001:db8::/32"]).unwrap();
    let update = ApiKeyUpdate {
        expires_at: Some(Some(at(600))),
        metadata: Some(Some(metadata.clone())),
        owner: Some(Some("ops@example.test".to_owned())),
        allowed_networks: Some(Some(networks.clone())),
        ..ApiKeyUpdate::default()
    };
    let before = store.latest_change_id().await.unwrap();
    let updated = store.update_api_key(&key.id, &update, at(1)).await.unwrap();
    assert_eq!(updated.expires_at, Some(at(600)));
    assert_eq!(updated.metadata, Some(metadata.clone()));
    assert_eq!(updated.owner.as_deref(), Some("ops@example.test"));
    assert_eq!(updated.allowed_networks, Some(networks));
    assert_eq!(updated.name, key.name);
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(updated)
    );
    assert!(changes_after(store.as_ref(), before)
        .await
        .contains(&Change::ApiKey {
            key_hash: key.key_hash
        }));

    let clear = ApiKeyUpdate {
        expires_at: Some(None),
        owner: Some(None),
        allowed_networks: Some(None),
        ..ApiKeyUpdate::default()
    };
    let cleared = store.update_api_key(&key.id, &clear, at(2)).await.unwrap();
    assert_eq!(cleared.expires_at, None);
    assert_eq!(cleared.owner, None);
    assert_eq!(cleared.allowed_networks, None);
    assert_eq!(cleared.metadata, Some(metadata), "untouched");

    let rotated = new_key(store.as_ref(), &application.id, at(3)).await;
    let successor = key_record(&application.id, Environment::Production, at(4));
    store
        .rotate_api_key(&rotated.id, &successor, at(60), at(4))
        .await
        .unwrap();
    let revoked = new_key(store.as_ref(), &application.id, at(5)).await;
    store
        .revoke_api_key(&revoked.id, None, at(6))
        .await
        .unwrap();
    let extend = ApiKeyUpdate {
        expires_at: Some(Some(at(900))),
        ..ApiKeyUpdate::default()
    };
    for id in [&rotated.id, &revoked.id] {
        let stored = store.api_key(id).await.unwrap();
        assert!(matches!(
            store.update_api_key(id, &extend, at(7)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.api_key(id).await.unwrap(), stored);
    }
    // Other fields of such keys still change.
    let owner_only = ApiKeyUpdate {
        owner: Some(Some("ops@example.test".to_owned())),
        ..ApiKeyUpdate::default()
    };
    store
        .update_api_key(&revoked.id, &owner_only, at(8))
        .await
        .unwrap();
}
