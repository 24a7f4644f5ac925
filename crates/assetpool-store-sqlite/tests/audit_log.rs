//! The audit log is append-only in the database itself: raw SQL cannot
//! change or delete an entry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_core::store::prelude::*;
use assetpool_core::store::{NewAuditEntry, Page};
use assetpool_store_sqlite::SqliteStore;
use sqlx::{Connection, SqliteConnection};

#[tokio::test]
async fn audit_entries_cannot_be_changed_or_deleted() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let entry = NewAuditEntry {
        at: chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        actor: "cli:root".to_owned(),
        actor_id: None,
        action: "key.revoke".to_owned(),
        target: "key_1".to_owned(),
        outcome: "success".to_owned(),
        error: None,
        detail: "{}".to_owned(),
    };
    let seq = store.append_audit(&entry).await.unwrap();

    let mut connection = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let update = sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE seq = ?")
        .bind(seq)
        .execute(&mut connection)
        .await
        .unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = sqlx::query("DELETE FROM audit_log")
        .execute(&mut connection)
        .await
        .unwrap_err();
    assert!(delete.to_string().contains("append-only"), "{delete}");
    connection.close().await.unwrap();

    let listed = store
        .list_audit(Page {
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].entry, entry);
    store.close().await;
}
