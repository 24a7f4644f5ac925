//! The PostgreSQL store itself: connecting (and migrating), its two pools,
//! the listener that follows change notifications, the transactions the
//! shared storage code writes and reads in, and closing it. The storage
//! traits are implemented by the code both backends share
//! (`crates/assetpool-store-sql`, through `dialect`).

use crate::dialect::CHANGES_CHANNEL;
use crate::sql::rows::map_error;
use assetpool_core::store::{PendingAudit, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long a request waits for a connection before storage counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a server uses its PostgreSQL connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections of the pool at most. The notification listener holds one
    /// of them for as long as it runs; the change feed has one connection of
    /// its own, so a node holds at most this plus one.
    pub max_connections: u32,
    /// PostgreSQL's `statement_timeout` on every connection but the one that
    /// migrates: a statement running longer is cancelled and its request
    /// fails (503 `storage_unavailable`) instead of holding a connection.
    pub statement_timeout: Option<Duration>,
}

impl PoolSettings {
    /// Default size of the request pool.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            statement_timeout: None,
        }
    }
}

/// Storage in a PostgreSQL database (or in one schema of it).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    /// One connection of its own for the change feed and the signing keys,
    /// so that a busy `pool` (a flood of unknown keys, slow queries) never
    /// keeps a server from learning about revocations.
    pub(crate) feed: PgPool,
    changed: Arc<Notify>,
    _listener: Arc<ListenerTask>,
    /// The audit entry every write transaction appends first (an audited
    /// store, `AuditLog::audited`), if any.
    pub(crate) pending_audit: Option<Arc<PendingAudit>>,
}

/// Aborts the notification listener when the last store handle is dropped.
#[derive(Debug)]
struct ListenerTask(JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The server and the TLS mode, for error messages (never the user or password).
fn describe(options: &PgConnectOptions) -> String {
    let mode = match options.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    };
    format!(
        "PostgreSQL at {}:{}/{} (sslmode={mode})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    )
}

/// Why connecting to `target` failed, in one line. A missing file can only be
/// one the URL names for TLS: say so, since the I/O error does not.
fn connect_error(target: &str, error: &sqlx::Error) -> StoreError {
    let hint = match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            " (a file named by sslrootcert, sslcert or sslkey)"
        }
        _ => "",
    };
    StoreError::Unavailable(format!("cannot connect to {target}: {error}{hint}"))
}

impl PostgresStore {
    /// Connects to and migrates the database at `url`
    /// (`postgres://user@host:port/database`; `?options[search_path]=schema`
    /// selects a schema; `?sslmode=verify-full&sslrootcert=/path/to/ca.pem`
    /// requires TLS and checks the server's certificate and name). Fails with
    /// [`StoreError::Unavailable`], naming the host and the TLS mode, when the
    /// server cannot be reached or its certificate is refused.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with(url, PoolSettings::default()).await
    }

    /// As [`PostgresStore::open`], with the pool's size and statement timeout.
    pub async fn open_with(url: &str, settings: PoolSettings) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad PostgreSQL URL: {error}")))?;
        let target = describe(&options);
        // One direct attempt first: its error says why (refused, unknown host,
        // authentication), where the pool would only report a timeout. It
        // then migrates, free of the statement timeout (a migration of a large
        // table may take longer than any request should).
        let mut probe = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
            .await
            .map_err(|_| StoreError::Unavailable(format!("cannot connect to {target}: timed out")))?
            .map_err(|error| connect_error(&target, &error))?;
        let migrated = sqlx::migrate!("./migrations")
            .run(&mut probe)
            .await
            .map_err(crate::sql::migrations::migration_error);
        let _ = probe.close().await;
        migrated?;
        let options = match settings.statement_timeout {
            Some(timeout) => {
                options.options([("statement_timeout", format!("{}ms", timeout.as_millis()))])
            }
            None => options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|error| connect_error(&target, &error))?;
        let feed = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| connect_error(&target, &error))?;
        let changed = Arc::new(Notify::new());
        let listener = tokio::spawn(listen_for_changes(pool.clone(), changed.clone()));
        Ok(PostgresStore {
            pool,
            feed,
            changed,
            _listener: Arc::new(ListenerTask(listener)),
            pending_audit: None,
        })
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
        self.feed.close().await;
    }

    /// A write transaction; for an audited store (`AuditLog::audited`), one
    /// that appends the pending audit entry before anything else.
    pub(crate) async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut transaction = self.pool.begin().await.map_err(map_error)?;
        if let Some(pending) = &self.pending_audit {
            crate::sql::audit::append_entry(&mut transaction, pending.entry()).await?;
            pending.mark_appended();
        }
        Ok(transaction)
    }

    /// A read-only transaction on one snapshot.
    pub(crate) async fn read(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(map_error)
    }

    /// Waits until a change is announced (`NOTIFY`), or `timeout` passes.
    pub(crate) async fn wait_for_announcement(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }
}

/// Follows `NOTIFY assetpool_changes` and wakes the change-feed follower.
/// Reconnects after a loss; a wake-up after reconnecting catches up on
/// anything announced meanwhile.
async fn listen_for_changes(pool: PgPool, changed: Arc<Notify>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(CHANGES_CHANNEL).await.is_ok() {
                    changed.notify_one();
                    while listener.recv().await.is_ok() {
                        changed.notify_one();
                    }
                }
                tracing::warn!("lost the PostgreSQL change notifications; reconnecting");
            }
            Err(error) => {
                tracing::debug!(%error, "cannot listen for change notifications yet");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool keeps to its size and cancels statements over the timeout;
    /// the store still works for everything quicker.
    #[tokio::test]
    async fn the_pool_keeps_its_size_and_statement_timeout() {
        let Some(schema) = assetpool_store_tests::postgres::fresh_schema("pool settings").await
        else {
            return;
        };
        let name = format!("pool_{}", &schema.schema[5..17]);
        let url = format!("{}&application_name={name}", schema.url);
        let settings = PoolSettings {
            max_connections: 2,
            statement_timeout: Some(Duration::from_millis(300)),
        };
        let store = PostgresStore::open_with(&url, settings).await.unwrap();
        let refused = sqlx::query("SELECT pg_sleep(2)")
            .execute(&store.pool)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("statement timeout"),
            "{refused}"
        );
        // A request whose statement was cancelled gets 503, not 500.
        assert!(
            matches!(map_error(refused), StoreError::Unavailable(_)),
            "a cancelled statement is not `Unavailable`"
        );
        sqlx::query("SELECT pg_sleep(0.05)")
            .execute(&store.pool)
            .await
            .unwrap();
        // Many statements at once share the two connections of the pool.
        let busy: Vec<_> = (0..8)
            .map(|_| {
                let pool = store.pool.clone();
                tokio::spawn(
                    async move { sqlx::query("SELECT pg_sleep(0.1)").execute(&pool).await },
                )
            })
            .collect();
        for task in busy {
            task.await.unwrap().unwrap();
        }
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&name)
                .fetch_one(&store.feed)
                .await
                .unwrap();
        // The pool's two (the notification listener's among them) and the feed's own.
        assert!(count <= 3, "{count} connections for a pool of 2");
        store.close().await;
    }
}
