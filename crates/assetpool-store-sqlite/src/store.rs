//! The [`Store`] implementation on SQLite.

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

const MAX_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its folder if missing) and migrates the
    /// database at `url` (`sqlite://path/to/file.db`).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad SQLite URL: {error}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_path_buf();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Other(format!("migration failed: {error}")))?;
        Ok(SqliteStore { pool })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)
    }

    /// A read transaction: one snapshot from its first read on (WAL).
    pub(crate) async fn read(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin().await.map_err(map_error)
    }
}

async fn push_change(
    connection: &mut SqliteConnection,
    change: &Change,
    now: i64,
) -> StoreResult<()> {
    let (kind, subject, until) = match change {
        Change::ApiKey { key_hash } => ("api_key", Some(key_hash.to_hex()), None),
        Change::SessionRevoked { session_id, until } => (
            "session_revoked",
            Some(session_id.clone()),
            Some(millis(*until)),
        ),
        Change::SigningKeys => ("signing_keys", None, None),
    };
    sqlx::query("INSERT INTO changes (kind, subject, until_at, created_at) VALUES (?, ?, ?, ?)")
        .bind(kind)
        .bind(subject)
        .bind(until)
        .bind(now)
        .execute(connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Revokes the session of a reused refresh token and announces it until `until`.
async fn revoke_reused_session(
    connection: &mut SqliteConnection,
    session_id: &str,
    until: DateTime<Utc>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ?")
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
    connection: &mut SqliteConnection,
    column: &str,
    value: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let statement = format!(
        "UPDATE sessions SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL \
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

async fn insert_key(connection: &mut SqliteConnection, key: &ApiKeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, \
         created_at, expires_at, revoked_at, revoked_reason, successor_id, last_used_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn issuer_or_record(&self, candidate: &str) -> StoreResult<String> {
        sqlx::query("INSERT OR IGNORE INTO settings (name, value) VALUES ('issuer', ?)")
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
            "INSERT INTO settings (name, value) VALUES ('longest_token_ttl', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = MAX(CAST(value AS INTEGER), ?1)",
        )
        .bind(ttl_seconds)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        self.longest_token_ttl().await
    }

    async fn longest_token_ttl(&self) -> StoreResult<i64> {
        let value: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'longest_token_ttl'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(value.unwrap_or(0))
    }

    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO applications (id, name, created_at) VALUES (?, ?, ?)")
            .bind(&application.id)
            .bind(&application.name)
            .bind(millis(application.created_at))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn application(&self, id: &str) -> StoreResult<Option<ApplicationRecord>> {
        let row = sqlx::query("SELECT id, name, created_at FROM applications WHERE id = ?")
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
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = ?")
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ?")
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
            "SELECT * FROM api_keys WHERE ?1 IS NULL OR environment = ?1 ORDER BY created_at, id",
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
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), \
             revoked_reason = COALESCE(revoked_reason, ?) WHERE id = ? RETURNING *",
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
            "SELECT COUNT(*) FROM api_keys WHERE application_id = ? AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?)",
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
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ?")
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
            "UPDATE api_keys SET successor_id = ?, \
             expires_at = MIN(COALESCE(expires_at, ?2), ?2) WHERE id = ?3",
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
                "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
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
             VALUES (?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
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
        let updated = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
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
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
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
        let updated = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
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
             access_expires_at) VALUES (?, ?, ?, ?, ?, ?)",
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
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
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
             JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?",
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
        let user_row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(&user_id)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        let user = rows::user(&user_row)?;
        if user.disabled {
            return Ok(RefreshOutcome::Invalid);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ? AND spent_at IS NULL",
        )
        .bind(now)
        .bind(spend.refresh_hash.0.as_slice())
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(spend.new_refresh_hash.0.as_slice())
        .bind(&session_id)
        .bind(millis(spend.new_refresh_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "UPDATE sessions SET access_expires_at = MAX(access_expires_at, ?) WHERE id = ?",
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
            "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL \
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
             WHERE revoked_at IS NOT NULL AND access_expires_at > ?",
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
        sqlx::query(
            "UPDATE signing_keys SET active = NULL, retired_at = ?, retires_at = ? WHERE active = 1",
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
            "SELECT id, kind, subject, until_at FROM changes WHERE id > ? ORDER BY id LIMIT ?",
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
            "DELETE FROM changes WHERE created_at < ? AND id < (SELECT MAX(id) FROM changes)",
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
}

async fn insert_signing_key(
    connection: &mut SqliteConnection,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_key, created_at, \
         retired_at, retires_at, active) VALUES (?, ?, ?, ?, ?, NULL, NULL, 1)",
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

fn change_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<ChangeRecord> {
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
