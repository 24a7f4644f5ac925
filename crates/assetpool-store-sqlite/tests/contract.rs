//! The storage contract suite of `assetpool-store-tests`, run on SQLite: each
//! test gets a new database file in its own temporary directory, removed once
//! the test is over.

// Helpers outside `#[test]` functions unwrap too: a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_store_sqlite::SqliteStore;
use assetpool_store_tests::FreshStore;
use std::sync::Arc;

async fn fresh_store() -> FreshStore {
    let directory = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        directory.path().join("contract.db").display()
    );
    let store = SqliteStore::open(&url).await.unwrap();
    FreshStore::with_guard(Arc::new(store), directory)
}

assetpool_store_tests::store_contract_tests!(fresh_store());
