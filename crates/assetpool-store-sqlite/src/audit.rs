//! The audit log: append and list. The database refuses to change or delete
//! an entry (triggers of migration 0003).

use crate::rows::{audit, map_error, millis};
use crate::store::SqliteStore;
use assetpool_core::store::{AuditRecord, NewAuditEntry, Page, StoreResult};

impl SqliteStore {
    /// Appends an entry; returns its `seq`.
    pub(crate) async fn add_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64> {
        let mut transaction = self.write().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, actor_id, action, target, outcome, error, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
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

    /// Entries, newest first, one page.
    pub(crate) async fn fetch_audit(&self, page: Page) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR seq < ?1) ORDER BY seq DESC LIMIT ?2",
        )
        .bind(page.before)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(audit).collect()
    }
}
