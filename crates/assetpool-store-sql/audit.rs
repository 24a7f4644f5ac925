//! The audit log: append and list. The database refuses to change or delete
//! an entry (triggers of migration 0003).

use super::rows::{audit, map_error, millis};
use crate::dialect::Backend;
use assetpool_core::store::{AuditLog, AuditRecord, NewAuditEntry, Page, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl AuditLog for Backend {
    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64> {
        let mut transaction = self.write().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, actor_id, action, target, outcome, error, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
        )
        .bind(millis(entry.at))
        .bind(&entry.actor)
        .bind(&entry.actor_id)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.outcome)
        .bind(&entry.error)
        .bind(&entry.detail)
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(seq)
    }

    async fn list_audit(&self, page: Page) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (CAST($1 AS BIGINT) IS NULL OR seq < $1) \
             ORDER BY seq DESC LIMIT $2",
        )
        .bind(page.before)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(audit).collect()
    }
}
