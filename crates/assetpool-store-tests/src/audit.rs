//! The audit log's hash chain, and the entry of a change written in the
//! change's own transaction (`AuditLog::audited`).

use crate::support::{at, new_application, new_key};
use assetpool_core::audit_chain::{ChainBreak, ChainVerifier, GENESIS};
use assetpool_core::ids::KeyId;
use assetpool_core::store::prelude::*;
use assetpool_core::store::{NewAuditEntry, Page, PendingAudit, StoreError};
use assetpool_core::ApiKeyStatus;
use std::sync::Arc;

fn entry(action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        at: at(1),
        actor: "cli:operator".to_owned(),
        actor_id: None,
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: "success".to_owned(),
        error: None,
        detail: "{}".to_owned(),
    }
}

/// Walks the chain as `audit verify` does: the number of entries checked, or
/// the first break.
pub async fn verify_chain(store: &dyn Store) -> Result<u64, ChainBreak> {
    let head = store.audit_chain_head().await.unwrap();
    let mut verifier = ChainVerifier::default();
    let mut after = head.started_after;
    loop {
        let links = store.audit_links(after, 7).await.unwrap();
        if links.is_empty() {
            break;
        }
        for link in &links {
            verifier.check(link)?;
            after = link.record.seq;
        }
    }
    verifier.finish(&head)
}

async fn all_entries(store: &dyn Store) -> Vec<NewAuditEntry> {
    let page = Page {
        before: None,
        limit: 1000,
    };
    let mut entries: Vec<NewAuditEntry> = store
        .list_audit(page)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.entry)
        .collect();
    entries.reverse();
    entries
}

/// A fresh log is an empty chain; each append links to the one before.
pub async fn appends_form_one_hash_chain(store: Arc<dyn Store>) {
    let head = store.audit_chain_head().await.unwrap();
    assert_eq!(head.started_after, 0);
    assert_eq!(head.last_seq, None);
    assert_eq!(head.last_hash, GENESIS);
    assert_eq!(verify_chain(store.as_ref()).await, Ok(0));
    let first = store.append_audit(&entry("key.revoke", "a")).await.unwrap();
    let second = store.append_audit(&entry("key.revoke", "b")).await.unwrap();
    let links = store.audit_links(0, 10).await.unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].record.seq, first);
    assert_eq!(links[0].previous_hash.as_deref(), Some(GENESIS));
    assert_eq!(links[1].previous_hash, links[0].hash);
    let head = store.audit_chain_head().await.unwrap();
    assert_eq!(head.last_seq, Some(second));
    assert_eq!(Some(head.last_hash), links[1].hash);
    assert_eq!(verify_chain(store.as_ref()).await, Ok(2));
}

/// The audited store writes a change and its entry in one transaction: the
/// entry lands with a change that commits, and neither with one that fails.
pub async fn audited_change_and_its_entry_commit_together(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;

    let pending = PendingAudit::new(entry("key.revoke", key.id.as_str()));
    let audited = store.audited(pending.clone());
    audited.revoke_api_key(&key.id, None, at(1)).await.unwrap();
    assert!(pending.appended());
    assert_eq!(
        all_entries(store.as_ref()).await,
        vec![pending.entry().clone()]
    );

    // A change refused inside its transaction takes its entry with it.
    let refused = PendingAudit::new(entry("key.revoke", "key_unknown"));
    let result = store
        .audited(refused.clone())
        .revoke_api_key(&KeyId::from("key_unknown"), None, at(1))
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert!(refused.appended());
    let rotated = PendingAudit::new(entry("key.rotate", key.id.as_str()));
    let successor = crate::support::key_record(&application.id, key.environment, at(2));
    let result = store
        .audited(rotated)
        .rotate_api_key(&key.id, &successor, at(3), at(2))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(all_entries(store.as_ref()).await.len(), 1);
    assert!(store.api_key(&successor.id).await.unwrap().is_none());

    // Reads of an audited store write nothing.
    let reader = PendingAudit::new(entry("key.show", key.id.as_str()));
    let shown = store
        .audited(reader.clone())
        .api_key(&key.id)
        .await
        .unwrap();
    assert_eq!(shown.unwrap().status(at(2)), ApiKeyStatus::Revoked);
    assert!(!reader.appended());
    assert_eq!(verify_chain(store.as_ref()).await, Ok(1));
}

/// Appends from many writers at once (plain and audited changes) still form
/// one unbroken chain.
pub async fn concurrent_appends_keep_one_chain(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let mut tasks = Vec::new();
    for index in 0..12 {
        let store = store.clone();
        let application_id = application.id.clone();
        tasks.push(tokio::spawn(async move {
            if index % 2 == 0 {
                store
                    .append_audit(&entry("alert.ack", &format!("alr_{index}")))
                    .await
                    .unwrap();
            } else {
                let key = crate::support::key_record(
                    &application_id,
                    assetpool_core::Environment::Production,
                    at(0),
                );
                let pending = PendingAudit::new(entry("key.create", key.id.as_str()));
                store.audited(pending).insert_api_key(&key).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(verify_chain(store.as_ref()).await, Ok(12));
}

/// Whoever bypasses the append-only triggers (`run`, raw SQL on a connection
/// of the test's own; `drop_triggers` removes them) to change, remove or cut
/// entries breaks the chain, and the first break is named.
pub async fn tampering_with_the_audit_log_breaks_the_chain<F, Fut>(
    store: Arc<dyn Store>,
    run: F,
    drop_triggers: &[&str],
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut seqs = Vec::new();
    for target in ["a", "b", "c", "d"] {
        seqs.push(
            store
                .append_audit(&entry("key.revoke", target))
                .await
                .unwrap(),
        );
    }
    assert_eq!(verify_chain(store.as_ref()).await, Ok(4));
    for statement in drop_triggers {
        run((*statement).to_owned()).await.unwrap();
    }
    run(format!(
        "UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = {}",
        seqs[1]
    ))
    .await
    .unwrap();
    assert_eq!(
        verify_chain(store.as_ref()).await,
        Err(ChainBreak::Altered { seq: seqs[1] })
    );
    run(format!("DELETE FROM audit_log WHERE seq = {}", seqs[1]))
        .await
        .unwrap();
    assert_eq!(
        verify_chain(store.as_ref()).await,
        Err(ChainBreak::NotLinked { seq: seqs[2] })
    );
    run(format!("DELETE FROM audit_log WHERE seq >= {}", seqs[1]))
        .await
        .unwrap();
    assert_eq!(
        verify_chain(store.as_ref()).await,
        Err(ChainBreak::Truncated { last_seq: seqs[3] })
    );
}

/// When the entry of a change cannot be written (`refuse_entries` makes the
/// database refuse inserts into the audit log), the change does not land.
pub async fn a_change_whose_entry_cannot_be_written_does_not_land<F, Fut>(
    store: Arc<dyn Store>,
    run: F,
    refuse_entries: &[&str],
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let application = new_application(store.as_ref(), at(0)).await;
    let key = new_key(store.as_ref(), &application.id, at(0)).await;
    for statement in refuse_entries {
        run((*statement).to_owned()).await.unwrap();
    }
    let pending = PendingAudit::new(entry("key.revoke", key.id.as_str()));
    let result = store
        .audited(pending)
        .revoke_api_key(&key.id, None, at(1))
        .await;
    assert!(result.is_err(), "{result:?}");
    let stored = store.api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, None);
    assert_eq!(stored.status(at(2)), ApiKeyStatus::Active);
}
