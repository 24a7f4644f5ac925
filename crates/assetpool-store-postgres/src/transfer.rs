//! Export and import of all durable state (see [`assetpool_core::export`]):
//! the SQL behind `Store::export_records` and `Store::import_records`.
//!
//! Export reads in one `REPEATABLE READ, READ ONLY` transaction, so it sees
//! one snapshot. Import runs in one transaction that first locks the tables
//! against concurrent writers (`EXCLUSIVE`: reads go on), checks that the
//! database is empty, then inserts everything or nothing. API keys are
//! inserted without their successor first and linked afterwards, since a
//! successor may sort before its predecessor. Text sorts with `COLLATE "C"`
//! (bytewise), as in SQLite, so both backends export in the same order.

use crate::rows::{self, map_error, millis, optional_millis};
use crate::store::PostgresStore;
use assetpool_core::clock::from_millis;
use assetpool_core::export::{
    import_order, ExportRecord, ExportedApiKey, ExportedApplication, ExportedRefreshToken,
    ExportedSession, ExportedSetting, ExportedSigningKey, ExportedUser,
};
use assetpool_core::limits::KeyLimits;
use assetpool_core::store::{StoreError, StoreResult, DATABASE_NOT_EMPTY};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::Postgres;
use sqlx::{PgConnection, Row};

impl PostgresStore {
    /// Every record, in export order, from one snapshot.
    pub(crate) async fn export_all(&self) -> StoreResult<Vec<ExportRecord>> {
        let mut transaction = self.read().await?;
        let connection: &mut PgConnection = &mut transaction;
        let mut records = Vec::new();
        for row in fetch(
            connection,
            "SELECT name, value FROM settings ORDER BY name COLLATE \"C\"",
        )
        .await?
        {
            records.push(ExportRecord::Setting(ExportedSetting {
                name: row.try_get("name").map_err(map_error)?,
                value: row.try_get("value").map_err(map_error)?,
            }));
        }
        let applications =
            "SELECT id, name, created_at FROM applications ORDER BY created_at, id COLLATE \"C\"";
        for row in fetch(connection, applications).await? {
            records.push(ExportRecord::Application(ExportedApplication {
                id: row.try_get("id").map_err(map_error)?,
                name: row.try_get("name").map_err(map_error)?,
                created_at: from_millis(row.try_get("created_at").map_err(map_error)?),
            }));
        }
        for row in fetch(
            connection,
            "SELECT * FROM api_keys ORDER BY created_at, id COLLATE \"C\"",
        )
        .await?
        {
            records.push(ExportRecord::ApiKey(ExportedApiKey::from(&rows::api_key(
                &row,
            )?)));
        }
        for row in fetch(
            connection,
            "SELECT * FROM users ORDER BY created_at, id COLLATE \"C\"",
        )
        .await?
        {
            records.push(ExportRecord::User(ExportedUser::from(&rows::user(&row)?)));
        }
        let signing_keys = "SELECT * FROM signing_keys ORDER BY created_at, kid COLLATE \"C\"";
        for row in fetch(connection, signing_keys).await? {
            records.push(ExportRecord::SigningKey(ExportedSigningKey::from(
                &rows::signing_key(&row)?,
            )));
        }
        for row in fetch(
            connection,
            "SELECT * FROM sessions ORDER BY created_at, id COLLATE \"C\"",
        )
        .await?
        {
            records.push(ExportRecord::Session(session(&row)?));
        }
        let tokens = "SELECT * FROM refresh_tokens ORDER BY expires_at, token_hash";
        for row in fetch(connection, tokens).await? {
            records.push(ExportRecord::RefreshToken(refresh_token(&row)?));
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(records)
    }

    /// Imports `records` into an empty database, all or nothing.
    pub(crate) async fn import_all(&self, records: &[ExportRecord]) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let connection: &mut PgConnection = &mut transaction;
        sqlx::query(
            "LOCK TABLE settings, applications, api_keys, users, signing_keys, sessions, \
             refresh_tokens IN EXCLUSIVE MODE",
        )
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
        refuse_unless_empty(connection).await?;
        let ordered = import_order(records);
        for record in &ordered {
            insert(connection, record).await?;
        }
        for record in &ordered {
            if let ExportRecord::ApiKey(ExportedApiKey {
                id,
                successor_id: Some(successor_id),
                ..
            }) = record
            {
                sqlx::query("UPDATE api_keys SET successor_id = $1 WHERE id = $2")
                    .bind(successor_id)
                    .bind(id)
                    .execute(&mut *connection)
                    .await
                    .map_err(map_error)?;
            }
        }
        transaction.commit().await.map_err(map_error)
    }
}

async fn fetch(connection: &mut PgConnection, statement: &str) -> StoreResult<Vec<PgRow>> {
    sqlx::query(statement)
        .fetch_all(connection)
        .await
        .map_err(map_error)
}

fn session(row: &PgRow) -> StoreResult<ExportedSession> {
    Ok(ExportedSession {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        application_id: row.try_get("application_id").map_err(map_error)?,
        api_key_id: row.try_get("api_key_id").map_err(map_error)?,
        created_at: from_millis(row.try_get("created_at").map_err(map_error)?),
        access_expires_at: from_millis(row.try_get("access_expires_at").map_err(map_error)?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(map_error)?
            .map(from_millis),
    })
}

fn refresh_token(row: &PgRow) -> StoreResult<ExportedRefreshToken> {
    let hash: Vec<u8> = row.try_get("token_hash").map_err(map_error)?;
    Ok(ExportedRefreshToken {
        token_hash: rows::hash_from_blob(&hash)?,
        session_id: row.try_get("session_id").map_err(map_error)?,
        expires_at: from_millis(row.try_get("expires_at").map_err(map_error)?),
        spent_at: row
            .try_get::<Option<i64>, _>("spent_at")
            .map_err(map_error)?
            .map(from_millis),
    })
}

async fn refuse_unless_empty(connection: &mut PgConnection) -> StoreResult<()> {
    let occupied: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM applications) OR EXISTS (SELECT 1 FROM api_keys) \
         OR EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM sessions) \
         OR EXISTS (SELECT 1 FROM signing_keys)",
    )
    .fetch_one(connection)
    .await
    .map_err(map_error)?;
    if occupied {
        return Err(StoreError::Conflict(DATABASE_NOT_EMPTY.to_owned()));
    }
    Ok(())
}

async fn insert(connection: &mut PgConnection, record: &ExportRecord) -> StoreResult<()> {
    let query = match record {
        ExportRecord::Setting(setting) => sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(&setting.name)
        .bind(&setting.value),
        ExportRecord::Application(application) => {
            sqlx::query("INSERT INTO applications (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&application.id)
                .bind(&application.name)
                .bind(millis(application.created_at))
        }
        // The successor is linked once every key is in.
        ExportRecord::ApiKey(key) => insert_api_key(key),
        ExportRecord::User(user) => sqlx::query(
            "INSERT INTO users (id, email, password_hash, admin, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.admin)
        .bind(user.disabled)
        .bind(millis(user.created_at)),
        // Exactly the keys not retired are active (at most one, by the schema).
        ExportRecord::SigningKey(key) => sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_key, \
             created_at, retired_at, retires_at, active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6::BIGINT IS NULL THEN 1 END)",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.sealed_private_key)
        .bind(key.public_key.as_slice())
        .bind(millis(key.created_at))
        .bind(optional_millis(key.retired_at))
        .bind(optional_millis(key.retires_at)),
        ExportRecord::Session(session) => sqlx::query(
            "INSERT INTO sessions (id, user_id, application_id, api_key_id, created_at, \
             access_expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.application_id)
        .bind(&session.api_key_id)
        .bind(millis(session.created_at))
        .bind(millis(session.access_expires_at))
        .bind(optional_millis(session.revoked_at)),
        ExportRecord::RefreshToken(token) => sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, spent_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token.token_hash.0.as_slice())
        .bind(&token.session_id)
        .bind(millis(token.expires_at))
        .bind(optional_millis(token.spent_at)),
    };
    query.execute(connection).await.map_err(map_error)?;
    Ok(())
}

/// The insertion of an exported key (its successor is linked once every key is in).
fn insert_api_key(key: &ExportedApiKey) -> Query<'_, Postgres, PgArguments> {
    let limits = KeyLimits::from(key.limits.as_ref()).to_columns();
    sqlx::query(
        "INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, \
         created_at, expires_at, revoked_at, revoked_reason, successor_id, last_used_at, \
         rate_requests, rate_unit_seconds, rate_burst, quota_requests, quota_period) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14, $15, $16)",
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
    .bind(optional_millis(key.last_used_at))
    .bind(limits.rate_requests)
    .bind(limits.rate_unit_seconds)
    .bind(limits.rate_burst)
    .bind(limits.quota_requests)
    .bind(limits.quota_period)
}
