//! The [`Store`] implementation on PostgreSQL.

use crate::rows::{self, map_error, millis, optional_millis};
use assetpool_core::clock::from_millis;
use assetpool_core::export::ExportRecord;
use assetpool_core::store::{
    ApiKeyRecord, ApplicationRecord, Change, ChangeRecord, NewSession, RefreshOutcome,
    RenewedSession, RevokedSession, SigningKeyRecord, SpendRefreshToken, Store, StoreError,
    StoreResult, UserRecord,
};
use assetpool_core::{Environment, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a connection before storage counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The channel on which committed changes are announced.
const CHANGES_CHANNEL: &str = "assetpool_changes";
/// Advisory lock taken by every transaction that appends to the change feed,
/// so that change ids become visible in increasing order.
const CHANGE_FEED_LOCK: i64 = 0x6173_7365_7470_6f6c;

/// Storage in a PostgreSQL database (or in one schema of it).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    changed: Arc<Notify>,
    _listener: Arc<ListenerTask>,
}

/// Aborts the notification listener when the last store handle is dropped.
#[derive(Debug)]
struct ListenerTask(JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn describe(options: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL at {}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    )
}

impl PostgresStore {
    /// Connects to and migrates the database at `url`
    /// (`postgres://user@host:port/database`; `?options[search_path]=schema`
    /// selects a schema). Fails with [`StoreError::Unavailable`], naming the
    /// host, when the server cannot be reached.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad PostgreSQL URL: {error}")))?;
        let target = describe(&options);
        // One direct attempt first: its error says why (refused, unknown host,
        // authentication), where the pool would only report a timeout.
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
            .await
            .map_err(|_| StoreError::Unavailable(format!("cannot connect to {target}: timed out")))?
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot connect to {target}: {error}"))
            })?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot connect to {target}: {error}"))
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Other(format!("migration failed: {error}")))?;
        let changed = Arc::new(Notify::new());
        let listener = tokio::spawn(listen_for_changes(pool.clone(), changed.clone()));
        Ok(PostgresStore {
            pool,
            changed,
            _listener: Arc::new(ListenerTask(listener)),
        })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(map_error)
    }

    /// A read-only transaction on one snapshot.
    pub(crate) async fn read(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(map_error)
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

/// Takes the change-feed lock for the rest of the transaction.
async fn lock_change_feed(connection: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGE_FEED_LOCK)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

async fn push_change(connection: &mut PgConnection, change: &Change, now: i64) -> StoreResult<()> {
    let (kind, subject, until) = match change {
        Change::ApiKey { key_hash } => ("api_key", Some(key_hash.to_hex()), None),
        Change::SessionRevoked { session_id, until } => (
            "session_revoked",
            Some(session_id.clone()),
            Some(millis(*until)),
        ),
        Change::SigningKeys => ("signing_keys", None, None),
    };
    lock_change_feed(connection).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO changes (kind, subject, until_at, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(kind)
    .bind(subject)
    .bind(until)
    .bind(now)
    .fetch_one(&mut *connection)
    .await
    .map_err(map_error)?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(id.to_string())
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Revokes the session of a reused refresh token and announces it until `until`.
async fn revoke_reused_session(
    connection: &mut PgConnection,
    session_id: &str,
    until: DateTime<Utc>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(session_id)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    let change = Change::SessionRevoked {
        session_id: session_id.to_owned(),
        until,
    };
    push_change(connection, &change, now).await
}

/// Revokes the live sessions matching `filter` (`user_id = ?` or `application_id = ?`).
async fn revoke_sessions_where(
    connection: &mut PgConnection,
    column: &str,
    value: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let statement = format!(
        "UPDATE sessions SET revoked_at = $1 WHERE {column} = $2 AND revoked_at IS NULL \
         RETURNING id, access_expires_at"
    );
    let revoked = sqlx::query(&statement)
        .bind(millis(now))
        .bind(value)
        .fetch_all(&mut *connection)
        .await
        .map_err(map_error)?;
    for row in revoked {
        let until = from_millis(
            row.try_get::<i64, _>("access_expires_at")
                .map_err(map_error)?,
        );
        if until <= now {
            continue;
        }
        let change = Change::SessionRevoked {
            session_id: row.try_get("id").map_err(map_error)?,
            until,
        };
        push_change(connection, &change, millis(now)).await?;
    }
    Ok(())
}

async fn insert_key(connection: &mut PgConnection, key: &ApiKeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, \
         created_at, expires_at, revoked_at, revoked_reason, successor_id, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&key.id)
    .bind(&key.application_id)
    .bind(&key.name)
    .bind(key.environment.as_str())
    .bind(key.key_hash.0.as_slice())
    .bind(&key.prefix)
    .bind(millis(key.created_at))
    .bind(optional_millis(key.expires_at))
    .bind(optional_millis(key.revoked_at))
    .bind(&key.revoked_reason)
    .bind(&key.successor_id)
    .bind(optional_millis(key.last_used_at))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    let change = Change::ApiKey {
        key_hash: key.key_hash,
    };
    push_change(connection, &change, millis(key.created_at)).await
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn issuer_or_record(&self, candidate: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ('issuer', $1) ON CONFLICT (name) DO NOTHING")
            .bind(candidate)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = 'issuer'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn record_token_ttl(&self, ttl_seconds: i64) -> StoreResult<i64> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('longest_token_ttl', $1::BIGINT::TEXT) \
             ON CONFLICT (name) DO UPDATE \
             SET value = GREATEST(CAST(settings.value AS BIGINT), $1::BIGINT)::TEXT",
        )
        .bind(ttl_seconds)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        self.longest_token_ttl().await
    }

    async fn longest_token_ttl(&self) -> StoreResult<i64> {
        let value: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(value AS BIGINT) FROM settings WHERE name = 'longest_token_ttl'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(value.unwrap_or(0))
    }

    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO applications (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&application.id)
            .bind(&application.name)
            .bind(millis(application.created_at))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn application(&self, id: &str) -> StoreResult<Option<ApplicationRecord>> {
        let row = sqlx::query("SELECT id, name, created_at FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| {
            Ok(ApplicationRecord {
                id: row.try_get("id").map_err(map_error)?,
                name: row.try_get("name").map_err(map_error)?,
                created_at: from_millis(row.try_get("created_at").map_err(map_error)?),
            })
        })
        .transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        insert_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn list_api_keys(
        &self,
        environment: Option<Environment>,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        let found = sqlx::query(
            "SELECT * FROM api_keys WHERE $1::TEXT IS NULL OR environment = $1 ORDER BY created_at, id",
        )
        .bind(environment.map(Environment::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(rows::api_key).collect()
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        let mut transaction = self.write().await?;
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1), \
             revoked_reason = COALESCE(revoked_reason, $2) WHERE id = $3 RETURNING *",
        )
        .bind(millis(now))
        .bind(reason)
        .bind(id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
        let key = rows::api_key(&row)?;
        push_change(
            &mut transaction,
            &Change::ApiKey {
                key_hash: key.key_hash,
            },
            millis(now),
        )
        .await?;
        let usable: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE application_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(&key.application_id)
        .bind(millis(now))
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        if usable == 0 {
            revoke_sessions_where(&mut transaction, "application_id", &key.application_id, now)
                .await?;
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(key)
    }

    async fn rotate_api_key(
        &self,
        id: &str,
        successor: &ApiKeyRecord,
        grace_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        let mut transaction = self.write().await?;
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?
            .ok_or(StoreError::NotFound)?;
        let old = rows::api_key(&row)?;
        if old.successor_id.is_some()
            || old.revoked_at.is_some()
            || old.expires_at.is_some_and(|expires_at| expires_at <= now)
        {
            return Err(StoreError::Conflict(
                "the key was already rotated, revoked or has expired".into(),
            ));
        }
        insert_key(&mut transaction, successor).await?;
        sqlx::query(
            "UPDATE api_keys SET successor_id = $1, \
             expires_at = LEAST(COALESCE(expires_at, $2), $2) WHERE id = $3",
        )
        .bind(&successor.id)
        .bind(millis(grace_until))
        .bind(id)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        push_change(
            &mut transaction,
            &Change::ApiKey {
                key_hash: old.key_hash,
            },
            millis(now),
        )
        .await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(successor.clone())
    }

    async fn record_api_key_use(&self, uses: &[(String, DateTime<Utc>)]) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        for (key_id, used_at) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $1) WHERE id = $2",
            )
            .bind(millis(*used_at))
            .bind(key_id)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, admin, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.admin)
        .bind(user.disabled)
        .bind(millis(user.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let found = sqlx::query("SELECT * FROM users ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        found.iter().map(rows::user).collect()
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        revoke_sessions_where(&mut transaction, "user_id", user_id, now).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn upgrade_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let updated = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(user_id)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if disabled {
            revoke_sessions_where(&mut transaction, "user_id", user_id, now).await?;
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, application_id, api_key_id, created_at, \
             access_expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.application_id)
        .bind(&session.api_key_id)
        .bind(millis(session.created_at))
        .bind(millis(session.access_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(session.refresh_hash.0.as_slice())
        .bind(&session.id)
        .bind(millis(session.refresh_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)
    }

    async fn spend_refresh_token(&self, spend: &SpendRefreshToken) -> StoreResult<RefreshOutcome> {
        let mut transaction = self.write().await?;
        let row = sqlx::query(
            "SELECT r.session_id, r.expires_at, r.spent_at, s.application_id, s.revoked_at, \
             s.user_id, s.access_expires_at FROM refresh_tokens r \
             JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1 \
             FOR UPDATE OF r, s",
        )
        .bind(spend.refresh_hash.0.as_slice())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id: String = row.try_get("session_id").map_err(map_error)?;
        let application_id: String = row.try_get("application_id").map_err(map_error)?;
        let session_revoked: Option<i64> = row.try_get("revoked_at").map_err(map_error)?;
        let spent_at: Option<i64> = row.try_get("spent_at").map_err(map_error)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(map_error)?;
        let user_id: String = row.try_get("user_id").map_err(map_error)?;
        let access_expires_at = from_millis(row.try_get("access_expires_at").map_err(map_error)?);
        if application_id != spend.application_id {
            return Ok(RefreshOutcome::Invalid);
        }
        let now = millis(spend.now);
        if spent_at.is_some() {
            // A spent token is reuse every time it comes back, also once its
            // session is revoked; the session is revoked and announced once.
            if session_revoked.is_none() {
                let until = access_expires_at.max(spend.access_expires_at);
                revoke_reused_session(&mut transaction, &session_id, until, now).await?;
                transaction.commit().await.map_err(map_error)?;
            }
            return Ok(RefreshOutcome::Reused { session_id });
        }
        if session_revoked.is_some() || expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        let user_row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        let user = rows::user(&user_row)?;
        if user.disabled {
            return Ok(RefreshOutcome::Invalid);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL",
        )
        .bind(now)
        .bind(spend.refresh_hash.0.as_slice())
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(spend.new_refresh_hash.0.as_slice())
        .bind(&session_id)
        .bind(millis(spend.new_refresh_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "UPDATE sessions SET access_expires_at = GREATEST(access_expires_at, $1) WHERE id = $2",
        )
        .bind(millis(spend.access_expires_at))
        .bind(&session_id)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(RefreshOutcome::Renewed(RenewedSession { session_id, user }))
    }

    async fn revoke_session(&self, session_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut transaction = self.write().await?;
        let until: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             RETURNING access_expires_at",
        )
        .bind(millis(now))
        .bind(session_id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        let Some(until) = until else {
            return Ok(false);
        };
        let change = Change::SessionRevoked {
            session_id: session_id.to_owned(),
            until: from_millis(until),
        };
        push_change(&mut transaction, &change, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn revoked_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<RevokedSession>> {
        let found = sqlx::query(
            "SELECT id, access_expires_at FROM sessions \
             WHERE revoked_at IS NOT NULL AND access_expires_at > $1",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found
            .iter()
            .map(|row| {
                Ok(RevokedSession {
                    session_id: row.try_get("id").map_err(map_error)?,
                    until: from_millis(row.try_get("access_expires_at").map_err(map_error)?),
                })
            })
            .collect()
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let found = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid DESC")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        found.iter().map(rows::signing_key).collect()
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        // Serialise rotations (and first keys), so each sees the last one committed.
        lock_change_feed(&mut transaction).await?;
        sqlx::query(
            "UPDATE signing_keys SET active = NULL, retired_at = $1, retires_at = $2 WHERE active = 1",
        )
        .bind(millis(key.created_at))
        .bind(millis(retire_until))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        insert_signing_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let mut transaction = self.write().await?;
        lock_change_feed(&mut transaction).await?;
        let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE active = 1")
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        if active > 0 {
            return Ok(false);
        }
        insert_signing_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn latest_change_id(&self) -> StoreResult<i64> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM changes")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(latest.unwrap_or(0))
    }

    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<ChangeRecord>> {
        let found = sqlx::query(
            "SELECT id, kind, subject, until_at FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(change_from_row).collect()
    }

    async fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let deleted = sqlx::query(
            "DELETE FROM changes WHERE created_at < $1 AND id < (SELECT MAX(id) FROM changes)",
        )
        .bind(millis(before))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(deleted.rows_affected())
    }

    async fn export_records(&self) -> StoreResult<Vec<ExportRecord>> {
        self.export_all().await
    }

    async fn import_records(&self, records: &[ExportRecord]) -> StoreResult<()> {
        self.import_all(records).await
    }

    async fn wait_for_changes(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }
}

async fn insert_signing_key(
    connection: &mut PgConnection,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_key, created_at, \
         retired_at, retires_at, active) VALUES ($1, $2, $3, $4, $5, NULL, NULL, 1)",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.sealed_private_key)
    .bind(key.public_key.as_slice())
    .bind(millis(key.created_at))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    push_change(connection, &Change::SigningKeys, millis(key.created_at)).await
}

fn change_from_row(row: &sqlx::postgres::PgRow) -> StoreResult<ChangeRecord> {
    let id: i64 = row.try_get("id").map_err(map_error)?;
    let kind: String = row.try_get("kind").map_err(map_error)?;
    let subject: Option<String> = row.try_get("subject").map_err(map_error)?;
    let until: Option<i64> = row.try_get("until_at").map_err(map_error)?;
    let malformed = || StoreError::Other(format!("malformed change {id}"));
    let change = match kind.as_str() {
        "api_key" => Change::ApiKey {
            key_hash: subject
                .as_deref()
                .and_then(SecretHash::from_hex)
                .ok_or_else(malformed)?,
        },
        "session_revoked" => Change::SessionRevoked {
            session_id: subject.ok_or_else(malformed)?,
            until: from_millis(until.ok_or_else(malformed)?),
        },
        "signing_keys" => Change::SigningKeys,
        _ => return Err(malformed()),
    };
    Ok(ChangeRecord { id, change })
}
