//! The webhook outbox (deliveries claimed with a lease, completed, retried
//! or given up) and the per-key owner webhooks.

use crate::rows::{map_error, millis, optional_millis, webhook_delivery};
use crate::store::SqliteStore;
use assetpool_core::store::{KeyWebhook, StoreError, StoreResult, WebhookDelivery};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Longest stored error of a failed attempt, in characters.
pub(crate) const MAX_ERROR_CHARS: usize = 500;

pub(crate) fn truncated(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

impl SqliteStore {
    /// Claims due deliveries until `lease_until`, oldest first.
    pub(crate) async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut transaction = self.write().await?;
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = ?, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= ? \
             ORDER BY created_at, id LIMIT ?) RETURNING *",
        )
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        let mut claimed = rows
            .iter()
            .map(webhook_delivery)
            .collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    /// Marks a delivery delivered.
    pub(crate) async fn complete_delivery(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE webhook_deliveries SET delivered_at = ? WHERE id = ?")
            .bind(millis(now))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or given up (at the
    /// end of the lease of the failed attempt) when `None`.
    pub(crate) async fn fail_delivery(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET last_error = ?1, \
             next_attempt_at = COALESCE(?2, next_attempt_at), \
             given_up_at = CASE WHEN ?2 IS NULL THEN next_attempt_at ELSE NULL END \
             WHERE id = ?3",
        )
        .bind(truncated(error))
        .bind(optional_millis(retry_at))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deliveries neither delivered nor given up.
    pub(crate) async fn count_backlog(&self) -> StoreResult<u64> {
        let backlog: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries \
             WHERE delivered_at IS NULL AND given_up_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(u64::try_from(backlog).unwrap_or(0))
    }

    /// Sets or removes a key's owner webhook (`NotFound` setting one on an
    /// unknown key).
    pub(crate) async fn replace_key_webhook(
        &self,
        key_id: &str,
        webhook: Option<&KeyWebhook>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        match webhook {
            Some(webhook) => {
                let done = sqlx::query(
                    "INSERT INTO api_key_webhooks (api_key_id, url, sealed_secret, updated_at) \
                     SELECT id, ?, ?, ? FROM api_keys WHERE id = ? \
                     ON CONFLICT (api_key_id) DO UPDATE SET url = excluded.url, \
                     sealed_secret = excluded.sealed_secret, updated_at = excluded.updated_at",
                )
                .bind(&webhook.url)
                .bind(&webhook.sealed_secret)
                .bind(millis(Utc::now()))
                .bind(key_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
            }
            None => {
                sqlx::query("DELETE FROM api_key_webhooks WHERE api_key_id = ?")
                    .bind(key_id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_error)?;
            }
        }
        transaction.commit().await.map_err(map_error)
    }

    /// A key's owner webhook.
    pub(crate) async fn fetch_key_webhook(&self, key_id: &str) -> StoreResult<Option<KeyWebhook>> {
        let row =
            sqlx::query("SELECT url, sealed_secret FROM api_key_webhooks WHERE api_key_id = ?")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_error)?;
        row.map(|row| {
            Ok(KeyWebhook {
                url: row.try_get("url").map_err(map_error)?,
                sealed_secret: row.try_get("sealed_secret").map_err(map_error)?,
            })
        })
        .transpose()
    }
}
