//! The storage contract suite of `assetpool-store-tests`, run on PostgreSQL:
//! each test gets its own schema, dropped once the test is over. Skipped (and
//! said so) when PostgreSQL is not reachable, unless ASSETPOOL_REQUIRE_POSTGRES=1.

// Helpers outside `#[test]` functions unwrap too: a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_store_postgres::PostgresStore;
use assetpool_store_tests::postgres::fresh_schema;
use assetpool_store_tests::FreshStore;
use std::sync::Arc;

async fn fresh_store() -> Option<FreshStore> {
    let schema = fresh_schema("the storage contract test").await?;
    let store = PostgresStore::open(&schema.url).await.unwrap();
    Some(FreshStore::with_guard(Arc::new(store), schema))
}

assetpool_store_tests::store_contract_tests!(fresh_store());
