//! The audit log is append-only in the database itself: raw SQL cannot
//! change, delete or truncate entries. Skipped when PostgreSQL is not reachable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_core::store::prelude::*;
use assetpool_core::store::{NewAuditEntry, Page};
use assetpool_store_postgres::PostgresStore;
use assetpool_store_tests::postgres::fresh_schema;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn audit_entries_cannot_be_changed_or_deleted() {
    let Some(schema) = fresh_schema("the append-only audit log test").await else {
        return;
    };
    let store = PostgresStore::open(&schema.url).await.unwrap();
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

    let mut connection = PgConnection::connect(&schema.url).await.unwrap();
    let update = sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE seq = $1")
        .bind(seq)
        .execute(&mut connection)
        .await
        .unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    for statement in ["DELETE FROM audit_log", "TRUNCATE audit_log"] {
        let error = sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
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
    drop(schema);
}
