//! The audit log is append-only in the database itself: raw SQL cannot
//! change or delete an entry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_store_sqlite::SqliteStore;
use assetpool_store_tests::monitoring::audit_entries_cannot_be_changed_or_deleted;
use sqlx::{Connection, SqliteConnection};
use std::sync::Arc;

#[tokio::test]
async fn audit_entries_cannot_be_changed_or_deleted_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("audit.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let run = |statement: String| {
        let url = url.clone();
        async move {
            let mut connection = SqliteConnection::connect(&url).await.unwrap();
            let result = sqlx::query(&statement).execute(&mut connection).await;
            connection.close().await.unwrap();
            result.map(|_| ()).map_err(|error| error.to_string())
        }
    };
    audit_entries_cannot_be_changed_or_deleted(store.clone(), run, &[]).await;
    store.close().await;
}
