//! Opens the storage backend chosen by the database URL's scheme.

use assetpool_core::{Store, StoreError};
use assetpool_store_sqlite::SqliteStore;
use std::sync::Arc;

/// Opens and migrates the database at `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(url).await?;
        return Ok(Arc::new(store));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(StoreError::Other(format!(
        "unsupported database URL scheme {scheme:?}: expected sqlite://PATH"
    )))
}
