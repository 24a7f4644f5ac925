//! The audit log is append-only in the database itself: raw SQL cannot
//! change, delete or truncate entries; whoever removes the triggers to do so
//! breaks the hash chain; a change whose entry cannot be written does not
//! land. Skipped when PostgreSQL is not reachable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_store_postgres::PostgresStore;
use assetpool_store_tests::audit::{
    a_change_whose_entry_cannot_be_written_does_not_land,
    tampering_with_the_audit_log_breaks_the_chain,
};
use assetpool_store_tests::monitoring::audit_entries_cannot_be_changed_or_deleted;
use assetpool_store_tests::postgres::{fresh_schema, TestSchema};
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Sql = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A runner of raw SQL on a connection of its own to `schema`.
fn sql(schema: &TestSchema) -> impl Fn(String) -> Sql {
    let url = schema.url.clone();
    move |statement: String| {
        let url = url.clone();
        Box::pin(async move {
            let mut connection = PgConnection::connect(&url).await.unwrap();
            let result = sqlx::query(&statement).execute(&mut connection).await;
            connection.close().await.unwrap();
            result.map(|_| ()).map_err(|error| error.to_string())
        })
    }
}

#[tokio::test]
async fn tampering_with_the_audit_log_breaks_the_chain_on_postgres() {
    let Some(schema) = fresh_schema("the audit chain tampering test").await else {
        return;
    };
    let store = Arc::new(PostgresStore::open(&schema.url).await.unwrap());
    tampering_with_the_audit_log_breaks_the_chain(
        store.clone(),
        sql(&schema),
        &["DROP TRIGGER audit_log_no_change ON audit_log"],
    )
    .await;
    store.close().await;
    drop(schema);
}

#[tokio::test]
async fn a_change_whose_entry_cannot_be_written_does_not_land_on_postgres() {
    let Some(schema) = fresh_schema("the failing audit entry test").await else {
        return;
    };
    let store = Arc::new(PostgresStore::open(&schema.url).await.unwrap());
    a_change_whose_entry_cannot_be_written_does_not_land(
        store.clone(),
        sql(&schema),
        &[
            "CREATE FUNCTION audit_log_full() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
            "CREATE TRIGGER audit_log_full BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION audit_log_full()",
        ],
    )
    .await;
    store.close().await;
    drop(schema);
}

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
