//! The SQLite store itself: opening (and migrating) the database file, its
//! two pools, the transactions the shared storage code writes and reads in,
//! and closing it. The storage traits are implemented by the code both
//! backends share (`crates/assetpool-store-sql`, through `dialect`).

use crate::files;
use crate::sql::rows::map_error;
use assetpool_core::store::{PendingAudit, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

const MAX_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// One connection of its own for the change feed and the signing keys,
    /// so that a busy `pool` (a flood of unknown keys, slow queries) never
    /// keeps a server from learning about revocations.
    pub(crate) feed: SqlitePool,
    /// The audit entry every write transaction appends first (an audited
    /// store, `AuditLog::audited`), if any.
    pub(crate) pending_audit: Option<Arc<PendingAudit>>,
}

impl SqliteStore {
    /// Opens (creating the file and its folder if missing) and migrates the
    /// database at `url` (`sqlite://path/to/file.db`). A folder or file created
    /// here is private to the user, whatever the umask (see `files.rs`).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad SQLite URL: {error}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_path_buf();
        if !files::is_in_memory(url) {
            files::prepare_database_file(&path)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(crate::sql::migrations::migration_error)?;
        // An in-memory database exists once per connection: it has no second one.
        let feed = if files::is_in_memory(url) {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|error| {
                    StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
                })?
        };
        Ok(SqliteStore {
            pool,
            feed,
            pending_audit: None,
        })
    }

    /// The database file `url` names, or `None` for an in-memory database.
    pub fn database_file(url: &str) -> StoreResult<Option<PathBuf>> {
        if files::is_in_memory(url) {
            return Ok(None);
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad SQLite URL: {error}")))?;
        Ok(Some(options.get_filename().to_path_buf()))
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
        self.feed.close().await;
    }

    /// A write transaction; for an audited store (`AuditLog::audited`), one
    /// that appends the pending audit entry before anything else.
    pub(crate) async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)?;
        if let Some(pending) = &self.pending_audit {
            crate::sql::audit::append_entry(&mut transaction, pending.entry()).await?;
            pending.mark_appended();
        }
        Ok(transaction)
    }

    /// A read transaction: one snapshot from its first read on (WAL).
    pub(crate) async fn read(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin().await.map_err(map_error)
    }

    /// Waits `timeout` for changes (SQLite cannot push them: the change-feed
    /// follower polls).
    pub(crate) async fn wait_for_announcement(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}
