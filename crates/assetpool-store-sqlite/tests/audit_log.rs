//! The audit log is append-only in the database itself: raw SQL cannot
//! change or delete an entry; whoever removes the triggers to do so breaks
//! the hash chain; a change whose entry cannot be written does not land.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_store_sqlite::SqliteStore;
use assetpool_store_tests::audit::{
    a_change_whose_entry_cannot_be_written_does_not_land,
    tampering_with_the_audit_log_breaks_the_chain,
};
use assetpool_store_tests::monitoring::audit_entries_cannot_be_changed_or_deleted;
use sqlx::{Connection, SqliteConnection};
use std::future::Future;
use std::sync::Arc;

/// A fresh store, its folder, and a runner of raw SQL on a connection of its own.
async fn store_and_sql() -> (
    Arc<SqliteStore>,
    tempfile::TempDir,
    impl Fn(String) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
) {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("audit.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let run = move |statement: String| {
        let url = url.clone();
        Box::pin(async move {
            let mut connection = SqliteConnection::connect(&url).await.unwrap();
            let result = sqlx::query(&statement).execute(&mut connection).await;
            connection.close().await.unwrap();
            result.map(|_| ()).map_err(|error| error.to_string())
        }) as std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
    };
    (store, directory, run)
}

#[tokio::test]
async fn tampering_with_the_audit_log_breaks_the_chain_on_sqlite() {
    let (store, _directory, run) = store_and_sql().await;
    tampering_with_the_audit_log_breaks_the_chain(
        store.clone(),
        run,
        &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
    )
    .await;
    store.close().await;
}

#[tokio::test]
async fn a_change_whose_entry_cannot_be_written_does_not_land_on_sqlite() {
    let (store, _directory, run) = store_and_sql().await;
    a_change_whose_entry_cannot_be_written_does_not_land(
        store.clone(),
        run,
        &["CREATE TRIGGER audit_log_full BEFORE INSERT ON audit_log \
           BEGIN SELECT RAISE(ABORT, 'disk full'); END"],
    )
    .await;
    store.close().await;
}

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
