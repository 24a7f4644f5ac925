//! Export and import (moving between backends): a populated store exported
//! and imported into a fresh one exports the very same records and behaves
//! the same; import refuses a store holding data and writes all or nothing.
//!
//! These tests take two fresh stores of the backend under test: a source and
//! a target.

use crate::support::{
    at, key_record, logged_in, new_application, new_key, new_session_with, new_user, scopes, spend,
    user_record, LoggedIn,
};
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::export::{ExportRecord, ExportedSession};
use assetpool_core::ids::{AlertId, ApplicationId, KeyId};
use assetpool_core::key_metadata::KeyMetadata;
use assetpool_core::service::new_signing_key_record;
use assetpool_core::store::{
    ApiKeyRecord, ApiKeyUpdate, ApplicationUpdate, CreationPage, NewAlert, NewAuditEntry, Page,
    RefreshOutcome, StoreError, UserRecord, DATABASE_NOT_EMPTY,
};
use assetpool_core::{ApplicationRole, Environment, KeySealer, ScopeSet, SecretHash, Store};
use std::sync::Arc;

const ISSUER: &str = "http://source.example.test";
const TOKEN_TTL: i64 = 3600;

/// What `populate` made that the tests look at afterwards.
struct Populated {
    alice: LoggedIn,
    bob: UserRecord,
    /// Alice's first refresh token, spent at minute 7.
    spent_refresh: SecretHash,
    /// Its successor, live.
    live_refresh: SecretHash,
    rotated: ApiKeyRecord,
    successor: ApiKeyRecord,
    revoked: ApiKeyRecord,
}

/// Every kind of record in every state: settings, two signing keys (one
/// retired), a used key, a rotated key with its successor (created earlier
/// than the key it replaces), a revoked key of another application (a
/// members-only one; the key with an expiry, metadata, an owner and an
/// allow-list, disabled before), a member of each application, an active
/// and a disabled admin user, a live session with a spent and a live refresh
/// token, a session revoked by disabling its user, and one logged out; an
/// open and an acknowledged alert; three audit entries.
async fn populate(store: &dyn Store) -> Populated {
    assert_eq!(store.issuer_or_record(ISSUER).await.unwrap(), ISSUER);
    assert_eq!(store.record_token_ttl(TOKEN_TTL).await.unwrap(), TOKEN_TTL);
    let plain = KeySealer::plain();
    let first_signing_key = new_signing_key_record(at(0), &plain).unwrap();
    assert!(store
        .insert_first_signing_key(&first_signing_key)
        .await
        .unwrap());
    let second_signing_key = new_signing_key_record(at(10), &plain).unwrap();
    store
        .rotate_signing_key(&second_signing_key, at(100))
        .await
        .unwrap();

    let alice = logged_in(store, "alice@example.test").await;
    let application_id = alice.key.application_id.clone();
    store
        .record_api_key_use(&[(alice.key.id.clone(), at(5))])
        .await
        .unwrap();
    let mut rotated = key_record(&application_id, Environment::Production, at(1));
    rotated.scopes = Some(scopes("orders:read orders:write"));
    store.insert_api_key(&rotated).await.unwrap();
    let successor = key_record(&application_id, Environment::Production, at(0));
    store
        .rotate_api_key(&rotated.id, &successor, at(60), at(2))
        .await
        .unwrap();
    let other_application = new_application(store, at(3)).await;
    let revoked = new_revoked_key(store, &other_application.id).await;

    let mut bob = user_record("bob@example.test", at(4));
    bob.scopes = Some(scopes("orders:read"));
    store.create_user(&bob).await.unwrap();
    add_members(store, &application_id, &alice, &other_application.id, &bob).await;
    new_session_with(store, &bob, &alice.key, at(5), bob.scopes.clone()).await;
    store.set_user_disabled(&bob.id, true, at(6)).await.unwrap();
    bob.disabled = true;

    let first_spend = spend(alice.session.refresh_hash, &application_id, at(7));
    assert!(matches!(
        store.spend_refresh_token(&first_spend).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
    // Restricted to no scope at all: not the same as unrestricted.
    let logged_out = new_session_with(
        store,
        &alice.user,
        &alice.key,
        at(8),
        Some(ScopeSet::empty()),
    )
    .await;
    assert!(store.revoke_session(&logged_out.id, at(9)).await.unwrap());
    add_alerts_and_audit(store, &alice.key.id).await;

    Populated {
        spent_refresh: alice.session.refresh_hash,
        live_refresh: first_spend.new_refresh_hash,
        alice,
        bob,
        rotated: store.api_key(&rotated.id).await.unwrap().unwrap(),
        successor,
        revoked: store.api_key(&revoked.id).await.unwrap().unwrap(),
    }
}

/// Alice owns her (open) application; Bob is the one member of the other,
/// members-only one.
async fn add_members(
    store: &dyn Store,
    application_id: &ApplicationId,
    alice: &LoggedIn,
    other_application_id: &ApplicationId,
    bob: &UserRecord,
) {
    store
        .set_application_member(
            application_id,
            &alice.user.id,
            ApplicationRole::Owner,
            at(4),
        )
        .await
        .unwrap();
    store
        .set_application_member(
            other_application_id,
            &bob.id,
            ApplicationRole::Member,
            at(4),
        )
        .await
        .unwrap();
    let restricted = ApplicationUpdate {
        members_only: Some(true),
        ..ApplicationUpdate::default()
    };
    store
        .update_application(other_application_id, &restricted, at(4))
        .await
        .unwrap();
}

/// Two alerts (the first acknowledged) and three audit entries.
async fn add_alerts_and_audit(store: &dyn Store, key_id: &KeyId) {
    for (index, rule) in ["revoked_key_used", "new_network"].into_iter().enumerate() {
        let alert = NewAlert {
            id: AlertId::new(),
            rule: rule.to_owned(),
            subject: format!("key:{key_id}"),
            api_key_id: Some(key_id.clone()),
            account: (index == 1).then(|| "alice@example.test".to_owned()),
            evidence: format!(r#"{{"index":{index}}}"#),
            at: at(20 + index as i64),
            episode_since: at(0),
            deliveries: Vec::new(),
        };
        let raised = store.raise_alert(&alert).await.unwrap();
        if index == 0 {
            store
                .ack_alert(&raised.alert.id, "admin:alice@example.test", at(30))
                .await
                .unwrap();
        }
    }
    for (index, action) in ["key.create", "key.revoke", "user.disable"]
        .into_iter()
        .enumerate()
    {
        store
            .append_audit(&NewAuditEntry {
                at: at(40 + index as i64),
                actor: "admin:alice@example.test".to_owned(),
                actor_id: (index != 1).then(|| "usr_1".to_owned()),
                action: action.to_owned(),
                target: key_id.to_string(),
                outcome: if index == 2 { "failure" } else { "success" }.to_owned(),
                error: (index == 2).then(|| "not_found".to_owned()),
                detail: r#"{"reason":"test"}"#.to_owned(),
            })
            .await
            .unwrap();
    }
}

/// A key of `application_id` with an expiry, metadata, an owner and an
/// allow-list, disabled, then revoked.
async fn new_revoked_key(store: &dyn Store, application_id: &ApplicationId) -> ApiKeyRecord {
    let revoked = new_key(store, application_id, at(3)).await;
    let profile = ApiKeyUpdate {
        expires_at: Some(Some(at(600))),
        metadata: Some(Some(KeyMetadata::parse(r#"{"team":"ops"}"#).unwrap())),
        owner: Some(Some("ops@example.test".to_owned())),
        allowed_networks: Some(Some(
            AllowedNetworks::parse(&["203.0.113.0/24", "2001:db8::1"]).unwrap(),
        )),
        ..ApiKeyUpdate::default()
    };
    store
        .update_api_key(&revoked.id, &profile, at(3))
        .await
        .unwrap();
    store
        .set_api_key_disabled(&revoked.id, true, at(3))
        .await
        .unwrap();
    store
        .revoke_api_key(&revoked.id, Some("leaked"), at(4))
        .await
        .unwrap();
    revoked
}

fn count(records: &[ExportRecord], kind: &str) -> usize {
    records
        .iter()
        .filter(|record| record.kind() == kind)
        .count()
}

/// The export lists every record, kinds in export order; imported into a
/// fresh store (whose own settings are overwritten), it exports the same
/// records, and keys, users, sessions, refresh tokens and signing keys behave
/// there as in the source.
pub async fn export_then_import_gives_equal_records(
    source: Arc<dyn Store>,
    target: Arc<dyn Store>,
) {
    let populated = populate(source.as_ref()).await;
    let records = source.export_records().await.unwrap();
    let mut kinds: Vec<&str> = records.iter().map(ExportRecord::kind).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "setting",
            "application",
            "api_key",
            "user",
            "application_member",
            "signing_key",
            "session",
            "refresh_token",
            "alert",
            "audit_entry",
            "audit_chain"
        ]
    );
    let counts: Vec<usize> = kinds.iter().map(|kind| count(&records, kind)).collect();
    assert_eq!(counts, [2, 2, 4, 2, 2, 2, 3, 4, 2, 3, 1]);
    let scoped: Vec<Option<&ScopeSet>> = records
        .iter()
        .filter_map(|record| match record {
            ExportRecord::ApiKey(key) => Some(key.scopes.as_ref()),
            ExportRecord::User(user) => Some(user.scopes.as_ref()),
            ExportRecord::Session(session) => Some(session.scopes.as_ref()),
            _ => None,
        })
        .collect();
    for expected in [
        scopes("orders:read orders:write"),
        scopes("orders:read"),
        ScopeSet::empty(),
    ] {
        assert!(scoped.contains(&Some(&expected)), "{expected:?} exported");
    }
    assert!(scoped.contains(&None), "unrestricted records too");

    // Settings alone do not make a store "not empty"; they are overwritten.
    target
        .issuer_or_record("http://target.example.test")
        .await
        .unwrap();
    target.record_token_ttl(60).await.unwrap();
    target.import_records(&records).await.unwrap();
    assert_eq!(target.export_records().await.unwrap(), records);
    assert_behaves_alike(source.as_ref(), target.as_ref(), &populated).await;
}

/// Settings, keys, users, revoked sessions and signing keys of `target` are
/// those of `source`; the live refresh token renews and the spent one is
/// reuse, on both alike.
async fn assert_behaves_alike(source: &dyn Store, target: &dyn Store, populated: &Populated) {
    assert_eq!(
        target.issuer_or_record("http://other").await.unwrap(),
        ISSUER
    );
    assert_eq!(target.longest_token_ttl().await.unwrap(), TOKEN_TTL);
    assert_eq!(
        target.signing_keys().await.unwrap(),
        source.signing_keys().await.unwrap()
    );
    let alice_key = source.api_key(&populated.alice.key.id).await.unwrap();
    assert_eq!(alice_key.as_ref().unwrap().last_used_at, Some(at(5)));
    for key in [
        alice_key.unwrap(),
        populated.rotated.clone(),
        populated.revoked.clone(),
    ] {
        assert_eq!(
            target.api_key_by_hash(&key.key_hash).await.unwrap(),
            Some(key)
        );
    }
    assert_eq!(
        target
            .api_key(&populated.rotated.id)
            .await
            .unwrap()
            .unwrap()
            .successor_id,
        Some(populated.successor.id.clone())
    );
    assert_eq!(
        target.list_users(&CreationPage::all()).await.unwrap(),
        source.list_users(&CreationPage::all()).await.unwrap()
    );
    assert_eq!(
        target.user_by_email("bob@example.test").await.unwrap(),
        Some(populated.bob.clone())
    );
    let applications = target
        .list_applications(&CreationPage::all())
        .await
        .unwrap();
    assert_eq!(
        applications,
        source
            .list_applications(&CreationPage::all())
            .await
            .unwrap()
    );
    assert_eq!(
        applications
            .iter()
            .map(|found| (found.application.members_only, found.members.len()))
            .collect::<Vec<_>>(),
        [(false, 1), (true, 1)]
    );
    assert_eq!(
        target.revoked_sessions(at(10)).await.unwrap(),
        source.revoked_sessions(at(10)).await.unwrap()
    );
    assert_alerts_and_audit_alike(source, target).await;

    let application_id = populated.alice.key.application_id.clone();
    for store in [source, target] {
        let renew = spend(populated.live_refresh, &application_id, at(11));
        assert!(matches!(
            store.spend_refresh_token(&renew).await.unwrap(),
            RefreshOutcome::Renewed(_)
        ));
        let replay = spend(populated.spent_refresh, &application_id, at(12));
        assert_eq!(
            store.spend_refresh_token(&replay).await.unwrap(),
            RefreshOutcome::Reused {
                session_id: populated.alice.session.id.clone()
            }
        );
    }
}

/// Alerts and the audit log of `target` are those of `source`; its hash
/// chain verifies, and the next alert and audit entry follow the imported
/// ones on both alike.
async fn assert_alerts_and_audit_alike(source: &dyn Store, target: &dyn Store) {
    let all = Page {
        before: None,
        limit: 100,
    };
    assert_eq!(
        target.list_alerts(None, all).await.unwrap(),
        source.list_alerts(None, all).await.unwrap()
    );
    assert_eq!(
        target.list_audit(all).await.unwrap(),
        source.list_audit(all).await.unwrap()
    );
    assert_eq!(
        target.audit_chain_head().await.unwrap(),
        source.audit_chain_head().await.unwrap()
    );
    assert_eq!(crate::audit::verify_chain(target).await, Ok(3));
    let mut next = Vec::new();
    for store in [source, target] {
        let seq = store
            .append_audit(&NewAuditEntry {
                at: at(50),
                actor: "cli:operator".to_owned(),
                actor_id: None,
                action: "key.revoke".to_owned(),
                target: "key_x".to_owned(),
                outcome: "success".to_owned(),
                error: None,
                detail: "{}".to_owned(),
            })
            .await
            .unwrap();
        assert_eq!(crate::audit::verify_chain(store).await, Ok(4));
        let alert = NewAlert {
            id: AlertId::new(),
            rule: "login_failures".to_owned(),
            subject: "account:bob@example.test".to_owned(),
            api_key_id: None,
            account: Some("bob@example.test".to_owned()),
            evidence: "{}".to_owned(),
            at: at(51),
            episode_since: at(0),
            deliveries: Vec::new(),
        };
        let raised = store.raise_alert(&alert).await.unwrap();
        next.push((seq, raised.alert.seq));
    }
    assert_eq!(next[0], next[1], "the next entry and alert follow alike");
}

fn is_not_empty_conflict(result: Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(reason)) if reason == DATABASE_NOT_EMPTY)
}

/// Import refuses a store that holds data (here: everything, or just one
/// signing key) with `Conflict`, and writes nothing.
pub async fn import_refuses_a_non_empty_store(source: Arc<dyn Store>, target: Arc<dyn Store>) {
    populate(source.as_ref()).await;
    let records = source.export_records().await.unwrap();
    assert!(is_not_empty_conflict(source.import_records(&records).await));
    assert_eq!(source.export_records().await.unwrap(), records);

    let signing_key = new_signing_key_record(at(0), &KeySealer::plain()).unwrap();
    assert!(target.insert_first_signing_key(&signing_key).await.unwrap());
    let before = target.export_records().await.unwrap();
    assert!(is_not_empty_conflict(target.import_records(&records).await));
    assert_eq!(target.export_records().await.unwrap(), before);
    let user = new_user(target.as_ref(), "carol@example.test", at(0)).await;
    assert!(is_not_empty_conflict(target.import_records(&records).await));
    assert_eq!(target.user_by_email(&user.email).await.unwrap(), Some(user));
}

/// A store whose audit log holds an entry is not empty either.
pub async fn import_refuses_a_store_with_audit_entries(
    source: Arc<dyn Store>,
    target: Arc<dyn Store>,
) {
    populate(source.as_ref()).await;
    let records = source.export_records().await.unwrap();
    target
        .append_audit(&NewAuditEntry {
            at: at(1),
            actor: "cli:operator".to_owned(),
            actor_id: None,
            action: "user.create".to_owned(),
            target: "carol@example.test".to_owned(),
            outcome: "success".to_owned(),
            error: None,
            detail: "{}".to_owned(),
        })
        .await
        .unwrap();
    let before = target.export_records().await.unwrap();
    assert!(is_not_empty_conflict(target.import_records(&records).await));
    assert_eq!(target.export_records().await.unwrap(), before);
}

/// An import that fails half-way (a session of an unknown user) leaves the
/// store empty; the records in reverse order then import fine, since stores
/// import kinds in export order whatever the order given.
pub async fn import_is_all_or_nothing_in_any_order(source: Arc<dyn Store>, target: Arc<dyn Store>) {
    let populated = populate(source.as_ref()).await;
    let records = source.export_records().await.unwrap();
    let mut broken = records.clone();
    broken.push(ExportRecord::Session(ExportedSession {
        id: "ses_orphan".into(),
        user_id: "usr_missing".into(),
        application_id: populated.alice.key.application_id.clone(),
        api_key_id: populated.alice.key.id.clone(),
        created_at: at(0),
        access_expires_at: at(60),
        revoked_at: None,
        scopes: None,
    }));
    let empty = target.export_records().await.unwrap();
    assert_eq!(
        empty.iter().map(ExportRecord::kind).collect::<Vec<_>>(),
        ["audit_chain"],
        "an empty store exports the head of its empty audit chain"
    );
    assert!(target.import_records(&broken).await.is_err());
    assert_eq!(target.export_records().await.unwrap(), empty);

    let reversed: Vec<ExportRecord> = records.iter().rev().cloned().collect();
    target.import_records(&reversed).await.unwrap();
    assert_eq!(target.export_records().await.unwrap(), records);
}
