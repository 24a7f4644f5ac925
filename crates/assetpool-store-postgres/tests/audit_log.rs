//! The audit log is append-only in the database itself: raw SQL cannot
//! change, delete or truncate entries. Skipped when PostgreSQL is not reachable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_store_postgres::PostgresStore;
use assetpool_store_tests::monitoring::audit_entries_cannot_be_changed_or_deleted;
use assetpool_store_tests::postgres::fresh_schema;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;

#[tokio::test]
async fn audit_entries_cannot_be_changed_deleted_or_truncated_on_postgres() {
    let Some(schema) = fresh_schema("the append-only audit log test").await else {
        return;
    };
    let store = Arc::new(PostgresStore::open(&schema.url).await.unwrap());
    let run = |statement: String| {
        let url = schema.url.clone();
        async move {
            let mut connection = PgConnection::connect(&url).await.unwrap();
            let result = sqlx::query(&statement).execute(&mut connection).await;
            connection.close().await.unwrap();
            result.map(|_| ()).map_err(|error| error.to_string())
        }
    };
    audit_entries_cannot_be_changed_or_deleted(store.clone(), run, &["TRUNCATE audit_log"]).await;
    store.close().await;
    drop(schema);
}
