//! Alerts and the webhook outbox: an alert folded into its open episode or
//! created with its webhook deliveries in the same transaction (whether it
//! folds is core's rule, [`NewAlert::folds_into`]); listing and
//! acknowledging; deliveries claimed with a lease, completed, retried or
//! given up; the per-key owner webhooks.

use super::rows::{
    alert, delivery_status, id, map_error, millis, optional_millis, webhook_delivery,
};
use crate::dialect::{self, Backend};
use assetpool_core::ids::{AlertId, ApplicationId, KeyId};
use assetpool_core::store::{
    AlertRecord, AlertStore, DeliveryStatus, KeyWebhook, NewAlert, Page, RaisedAlert, StoreError,
    StoreResult, WebhookDelivery,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// First half of the lock key of an episode (the second is a hash of its
/// rule and subject), so that concurrent raises of one episode run one after
/// the other.
const ALERT_EPISODE_LOCK: i32 = 0x616c_7274;

/// Longest stored error of a failed attempt, in characters.
const MAX_ERROR_CHARS: usize = 500;

#[async_trait]
impl AlertStore for Backend {
    async fn raise_alert(&self, new: &NewAlert) -> StoreResult<RaisedAlert> {
        let mut transaction = self.write().await?;
        let episode = format!("{}\n{}", new.rule, new.subject);
        dialect::lock_subjects(&mut transaction, ALERT_EPISODE_LOCK, &[&episode]).await?;
        let open = sqlx::query(
            "SELECT * FROM alerts WHERE rule = $1 AND subject = $2 AND acked_at IS NULL \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(&new.rule)
        .bind(&new.subject)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?
        .as_ref()
        .map(alert)
        .transpose()?;
        let raised = match open.filter(|open| new.folds_into(open)) {
            Some(open) => {
                let row = sqlx::query(concat!(
                    "UPDATE alerts SET occurrences = occurrences + 1, last_seen = ",
                    greatest!(),
                    "(last_seen, $1), evidence = $2 WHERE seq = $3 RETURNING *"
                ))
                .bind(millis(new.at))
                .bind(&new.evidence)
                .bind(open.seq)
                .fetch_one(&mut *transaction)
                .await
                .map_err(map_error)?;
                RaisedAlert {
                    alert: alert(&row)?,
                    created: false,
                }
            }
            None => {
                let row = sqlx::query(
                    "INSERT INTO alerts (id, rule, subject, api_key_id, account, evidence, \
                     first_seen, last_seen, occurrences) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) RETURNING *",
                )
                .bind(new.id.as_str())
                .bind(&new.rule)
                .bind(&new.subject)
                .bind(new.api_key_id.as_ref().map(KeyId::as_str))
                .bind(&new.account)
                .bind(&new.evidence)
                .bind(millis(new.at))
                .fetch_one(&mut *transaction)
                .await
                .map_err(map_error)?;
                for delivery in &new.deliveries {
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (id, alert_id, url, secret_ref, payload, \
                         attempts, created_at, next_attempt_at) \
                         VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
                    )
                    .bind(delivery.id.as_str())
                    .bind(new.id.as_str())
                    .bind(&delivery.url)
                    .bind(&delivery.secret_ref)
                    .bind(&delivery.payload)
                    .bind(millis(new.at))
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_error)?;
                }
                RaisedAlert {
                    alert: alert(&row)?,
                    created: true,
                }
            }
        };
        transaction.commit().await.map_err(map_error)?;
        Ok(raised)
    }

    async fn list_alerts(
        &self,
        since: Option<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM alerts WHERE (CAST($1 AS BIGINT) IS NULL OR last_seen >= $1) \
             AND (CAST($2 AS BIGINT) IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
        )
        .bind(since.map(millis))
        .bind(page.before)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(alert).collect()
    }

    async fn alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(alert).transpose()
    }

    async fn ack_alert(
        &self,
        id: &AlertId,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<AlertRecord> {
        let mut transaction = self.write().await?;
        sqlx::query(
            "UPDATE alerts SET acked_at = $1, acked_by = $2 WHERE id = $3 AND acked_at IS NULL",
        )
        .bind(millis(now))
        .bind(by)
        .bind(id.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?
            .ok_or(StoreError::NotFound)?;
        transaction.commit().await.map_err(map_error)?;
        alert(&row)
    }

    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut transaction = self.write().await?;
        // Rows another server is claiming are skipped, not waited for.
        let rows = sqlx::query(concat!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= $2 \
             ORDER BY created_at, id",
            collate_c!(),
            " LIMIT $3",
            skip_locked!(),
            ") RETURNING *"
        ))
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

    async fn complete_webhook_delivery(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE webhook_deliveries SET delivered_at = $1 WHERE id = $2")
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

    async fn fail_webhook_delivery(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET last_error = $1, \
             next_attempt_at = COALESCE($2, next_attempt_at), \
             given_up_at = CASE WHEN CAST($2 AS BIGINT) IS NULL THEN next_attempt_at \
             ELSE NULL END WHERE id = $3",
        )
        .bind(error)
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

    async fn webhook_backlog(&self) -> StoreResult<u64> {
        let backlog: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries \
             WHERE delivered_at IS NULL AND given_up_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(u64::try_from(backlog).unwrap_or(0))
    }

    async fn set_key_webhook(
        &self,
        key_id: &KeyId,
        webhook: Option<&KeyWebhook>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        match webhook {
            Some(webhook) => {
                let done = sqlx::query(
                    "INSERT INTO api_key_webhooks (api_key_id, url, sealed_secret, updated_at) \
                     SELECT id, $1, $2, $3 FROM api_keys WHERE id = $4 \
                     ON CONFLICT (api_key_id) DO UPDATE SET url = excluded.url, \
                     sealed_secret = excluded.sealed_secret, updated_at = excluded.updated_at",
                )
                .bind(&webhook.url)
                .bind(&webhook.sealed_secret)
                .bind(millis(Utc::now()))
                .bind(key_id.as_str())
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
            }
            None => {
                sqlx::query("DELETE FROM api_key_webhooks WHERE api_key_id = $1")
                    .bind(key_id.as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_error)?;
            }
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn key_webhook(&self, key_id: &KeyId) -> StoreResult<Option<KeyWebhook>> {
        let row =
            sqlx::query("SELECT url, sealed_secret FROM api_key_webhooks WHERE api_key_id = $1")
                .bind(key_id.as_str())
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

    async fn application_alerts(
        &self,
        application_id: &ApplicationId,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>> {
        // From the application's keys (api_keys_by_application_creation) to
        // their alerts (alerts_by_key), newest first.
        let rows = sqlx::query(
            "SELECT a.* FROM alerts a JOIN api_keys k ON k.id = a.api_key_id \
             WHERE k.application_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR a.seq < $2) \
             ORDER BY a.seq DESC LIMIT $3",
        )
        .bind(application_id.as_str())
        .bind(page.before)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(alert).collect()
    }

    async fn application_key_webhooks(
        &self,
        application_id: &ApplicationId,
        limit: u32,
    ) -> StoreResult<Vec<(KeyId, String)>> {
        let rows = sqlx::query(concat!(
            "SELECT w.api_key_id, w.url FROM api_key_webhooks w \
             JOIN api_keys k ON k.id = w.api_key_id WHERE k.application_id = $1 \
             ORDER BY w.api_key_id",
            collate_c!(),
            " LIMIT $2"
        ))
        .bind(application_id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    id(row, "api_key_id")?,
                    row.try_get("url").map_err(map_error)?,
                ))
            })
            .collect()
    }

    async fn key_webhook_deliveries(
        &self,
        key_id: &KeyId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryStatus>> {
        // Deliveries to a key's owner webhook are signed with `key:<id>`
        // (webhook_deliveries_by_destination).
        let rows = sqlx::query(concat!(
            "SELECT id, alert_id, attempts, created_at, next_attempt_at, delivered_at, \
             given_up_at, last_error FROM webhook_deliveries WHERE secret_ref = $1 \
             ORDER BY created_at DESC, id",
            collate_c!(),
            " DESC LIMIT $2"
        ))
        .bind(format!("key:{key_id}"))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(delivery_status).collect()
    }
}
