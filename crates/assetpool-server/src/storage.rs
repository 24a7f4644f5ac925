//! Opens the storage backend chosen by the database URL's scheme:
//! `sqlite://PATH` (the default) or `postgres://USER@HOST:PORT/DATABASE`.

use assetpool_core::{Store, StoreError};
use assetpool_store_postgres::{PoolSettings, PostgresStore};
use assetpool_store_sqlite::SqliteStore;
use std::sync::Arc;

/// The warning `serve` logs at start when `url` lets the database traffic
/// cross a network without TLS that checks the server (see
/// [`assetpool_store_postgres::unprotected_transport_warning`]).
pub fn transport_warning(url: &str) -> Option<String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return assetpool_store_postgres::unprotected_transport_warning(url);
    }
    None
}

/// [`open_store`] for `serve`: first logs the [`transport_warning`], if
/// any; a PostgreSQL pool gets `pool`'s size and statement timeout.
pub async fn open_server_store(
    url: &str,
    pool: PoolSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(warning) = transport_warning(url) {
        tracing::warn!("{warning}");
    }
    if is_postgres(url) {
        return Ok(Arc::new(PostgresStore::open_with(url, pool).await?));
    }
    open_store(url).await
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens and migrates the database at `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::open(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::open(url).await?));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(StoreError::Other(format!(
        "unsupported database URL scheme {scheme:?}: expected sqlite://PATH or postgres://HOST/DATABASE"
    )))
}
