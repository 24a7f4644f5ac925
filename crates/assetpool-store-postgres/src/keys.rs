//! Applications, their API keys (creation, lookup, revocation, rotation) and
//! the recording of key use. Rotation locks the old key's row, so it happens
//! once across servers.

use crate::changes::push_change;
use crate::rows::{self, map_error, millis, optional_millis};
use crate::sessions::revoke_sessions_where;
use crate::store::PostgresStore;
use assetpool_core::clock::from_millis;
use assetpool_core::store::{
    ApiKeyRecord, ApiKeyUpdate, ApplicationRecord, Change, QuotaDelta, StoreError, StoreResult,
};
use assetpool_core::{Environment, SecretHash};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

/// Inserts `key` and announces it, in the transaction of `connection`.
async fn insert_key(connection: &mut PgConnection, key: &ApiKeyRecord) -> StoreResult<()> {
    let limits = key.limits.to_columns();
    sqlx::query(
        "INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, \
         created_at, expires_at, revoked_at, revoked_reason, successor_id, last_used_at, \
         rate_requests, rate_unit_seconds, rate_burst, quota_requests, quota_period) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
    .bind(limits.rate_requests)
    .bind(limits.rate_unit_seconds)
    .bind(limits.rate_burst)
    .bind(limits.quota_requests)
    .bind(limits.quota_period)
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    let change = Change::ApiKey {
        key_hash: key.key_hash,
    };
    push_change(connection, &change, millis(key.created_at)).await
}

impl PostgresStore {
    /// Creates an application.
    pub(crate) async fn insert_application(
        &self,
        application: &ApplicationRecord,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO applications (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&application.id)
            .bind(&application.name)
            .bind(millis(application.created_at))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    /// Finds an application.
    pub(crate) async fn fetch_application(
        &self,
        id: &str,
    ) -> StoreResult<Option<ApplicationRecord>> {
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

    /// Stores a new key and announces it.
    pub(crate) async fn add_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        insert_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)
    }

    /// Finds a key by the hash of its secret.
    pub(crate) async fn fetch_api_key_by_hash(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    /// Finds a key by id.
    pub(crate) async fn fetch_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    /// Lists keys, optionally of one environment, oldest first.
    pub(crate) async fn fetch_api_keys(
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

    /// Usable, unrotated keys expiring in `(after, until]`.
    pub(crate) async fn fetch_api_keys_expiring(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        let found = sqlx::query(
            "SELECT * FROM api_keys WHERE revoked_at IS NULL AND successor_id IS NULL \
             AND expires_at > $1 AND expires_at <= $2 ORDER BY expires_at, id",
        )
        .bind(millis(after))
        .bind(millis(until))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(rows::api_key).collect()
    }

    /// Revokes a key, and its application's sessions when it was the
    /// application's last usable key.
    pub(crate) async fn revoke_key(
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
        // Rows first, the change feed's lock last (as every transaction that
        // announces changes does), so that two never wait for each other.
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
        push_change(
            &mut transaction,
            &Change::ApiKey {
                key_hash: key.key_hash,
            },
            millis(now),
        )
        .await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(key)
    }

    /// Stores `successor` and ends the old key's life at `grace_until`.
    pub(crate) async fn rotate_key(
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

    /// Records last-use times.
    pub(crate) async fn record_key_uses(
        &self,
        uses: &[(String, DateTime<Utc>)],
    ) -> StoreResult<()> {
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

    /// Changes a key's name or limits and announces it.
    pub(crate) async fn update_key(
        &self,
        id: &str,
        update: &ApiKeyUpdate,
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
        let name = update.name.as_deref().unwrap_or(&old.name);
        let limits = update.limits.unwrap_or(old.limits).to_columns();
        let row = sqlx::query(
            "UPDATE api_keys SET name = $1, rate_requests = $2, rate_unit_seconds = $3, \
             rate_burst = $4, quota_requests = $5, quota_period = $6 WHERE id = $7 RETURNING *",
        )
        .bind(name)
        .bind(limits.rate_requests)
        .bind(limits.rate_unit_seconds)
        .bind(limits.rate_burst)
        .bind(limits.quota_requests)
        .bind(limits.quota_period)
        .bind(id)
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        let key = rows::api_key(&row)?;
        push_change(
            &mut transaction,
            &Change::ApiKey {
                key_hash: key.key_hash,
            },
            millis(now),
        )
        .await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(key)
    }

    /// Adds to quota counters and returns their totals.
    pub(crate) async fn add_quota(
        &self,
        deltas: &[QuotaDelta],
    ) -> StoreResult<Vec<(QuotaDelta, u64)>> {
        let mut transaction = self.write().await?;
        let mut totals = Vec::with_capacity(deltas.len());
        for delta in deltas {
            let total: Option<i64> = sqlx::query_scalar(
                "INSERT INTO api_key_quota_usage (api_key_id, period_start, requests) \
                 SELECT id, $1, $2 FROM api_keys WHERE id = $3 \
                 ON CONFLICT (api_key_id, period_start) \
                 DO UPDATE SET requests = api_key_quota_usage.requests + excluded.requests \
                 RETURNING requests",
            )
            .bind(millis(delta.period_start))
            .bind(i64::try_from(delta.requests).unwrap_or(i64::MAX))
            .bind(&delta.key_id)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?;
            // A deleted key has no counter: nothing to learn.
            if let Some(total) = total {
                totals.push((delta.clone(), u64::try_from(total).unwrap_or(0)));
            }
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(totals)
    }

    /// Deletes quota counters of periods that started before `before`.
    pub(crate) async fn prune_quota(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM api_key_quota_usage WHERE period_start < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}
