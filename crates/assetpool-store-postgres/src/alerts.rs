//! Alerts: one open episode per rule and subject, raised with the webhook
//! deliveries of a new alert in the same transaction; listing and
//! acknowledging.

use crate::rows::{alert, map_error, millis};
use crate::store::PostgresStore;
use assetpool_core::store::{AlertRecord, NewAlert, Page, RaisedAlert, StoreError, StoreResult};
use chrono::{DateTime, Utc};

/// First half of the advisory lock key of an episode (the second is a hash of
/// its rule and subject); two-part keys never collide with the change-feed lock.
const ALERT_EPISODE_LOCK: i32 = 0x616c_7274;

impl PostgresStore {
    /// Updates the open episode or creates the alert with its deliveries
    /// (an advisory lock on the rule and subject serialises concurrent raises
    /// of one episode).
    pub(crate) async fn add_alert(&self, new: &NewAlert) -> StoreResult<RaisedAlert> {
        let mut transaction = self.write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(ALERT_EPISODE_LOCK)
            .bind(format!("{}\n{}", new.rule, new.subject))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM alerts WHERE rule = $1 AND subject = $2 AND acked_at IS NULL \
             AND last_seen >= $3 ORDER BY seq DESC LIMIT 1",
        )
        .bind(&new.rule)
        .bind(&new.subject)
        .bind(millis(new.episode_since))
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        let raised = if let Some(seq) = open {
            let row = sqlx::query(
                "UPDATE alerts SET occurrences = occurrences + 1, \
                 last_seen = GREATEST(last_seen, $1), evidence = $2 WHERE seq = $3 RETURNING *",
            )
            .bind(millis(new.at))
            .bind(&new.evidence)
            .bind(seq)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
            RaisedAlert {
                alert: alert(&row)?,
                created: false,
            }
        } else {
            let row = sqlx::query(
                "INSERT INTO alerts (id, rule, subject, api_key_id, account, evidence, \
                 first_seen, last_seen, occurrences) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) RETURNING *",
            )
            .bind(&new.id)
            .bind(&new.rule)
            .bind(&new.subject)
            .bind(&new.api_key_id)
            .bind(&new.account)
            .bind(&new.evidence)
            .bind(millis(new.at))
            .bind(millis(new.at))
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
            for delivery in &new.deliveries {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, alert_id, url, secret_ref, payload, \
                     attempts, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
                )
                .bind(&delivery.id)
                .bind(&new.id)
                .bind(&delivery.url)
                .bind(&delivery.secret_ref)
                .bind(&delivery.payload)
                .bind(millis(new.at))
                .bind(millis(new.at))
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
            }
            RaisedAlert {
                alert: alert(&row)?,
                created: true,
            }
        };
        transaction.commit().await.map_err(map_error)?;
        Ok(raised)
    }

    /// Alerts last seen since `since`, newest first, one page.
    pub(crate) async fn fetch_alerts(
        &self,
        since: Option<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM alerts WHERE ($1 IS NULL OR last_seen >= $1) \
             AND ($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
        )
        .bind(since.map(millis))
        .bind(page.before)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(alert).collect()
    }

    /// Finds an alert by id.
    pub(crate) async fn fetch_alert(&self, id: &str) -> StoreResult<Option<AlertRecord>> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(alert).transpose()
    }

    /// Acknowledges an alert; a second acknowledgement keeps the first.
    pub(crate) async fn acknowledge_alert(
        &self,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<AlertRecord> {
        let mut transaction = self.write().await?;
        sqlx::query(
            "UPDATE alerts SET acked_at = $1, acked_by = $2 WHERE id = $3 AND acked_at IS NULL",
        )
        .bind(millis(now))
        .bind(by)
        .bind(id)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?
            .ok_or(StoreError::NotFound)?;
        transaction.commit().await.map_err(map_error)?;
        alert(&row)
    }
}
