//! The audit log: append and list, and its hash chain. The database refuses
//! to change or delete an entry (triggers of migration 0003); each entry
//! carries the hash of the one before it (migration 0007,
//! `assetpool_core::audit_chain`). Every append locks the chain's head row
//! first, so appends run one at a time; a transaction that writes a change
//! with its entry appends it before anything else (`append_entry`, called by
//! the backend's `write` for an [`AuditLog::audited`] store), so it never
//! holds another lock while waiting for the chain.

use super::rows::{audit, map_error, millis};
use crate::dialect::{Backend, Connection, Row};
use assetpool_core::audit_chain::link_hash;
use assetpool_core::store::{
    AuditChainHead, AuditLink, AuditLog, AuditRecord, NewAuditEntry, Page, PendingAudit, Store,
    StoreResult,
};
use async_trait::async_trait;
use sqlx::Row as _;
use std::sync::Arc;

/// Appends `entry` to the chain in the transaction of `connection`.
pub(crate) async fn append_entry(
    connection: &mut Connection,
    entry: &NewAuditEntry,
) -> StoreResult<i64> {
    let previous: String = sqlx::query_scalar(concat!(
        "SELECT last_hash FROM audit_chain WHERE id = 1",
        for_update!()
    ))
    .fetch_one(&mut *connection)
    .await
    .map_err(map_error)?;
    let hash = link_hash(&previous, entry);
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (at, actor, actor_id, action, target, outcome, error, detail, \
         previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
    )
    .bind(millis(entry.at))
    .bind(&entry.actor)
    .bind(&entry.actor_id)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.outcome)
    .bind(&entry.error)
    .bind(&entry.detail)
    .bind(&previous)
    .bind(&hash)
    .fetch_one(&mut *connection)
    .await
    .map_err(map_error)?;
    sqlx::query("UPDATE audit_chain SET last_seq = $1, last_hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    Ok(seq)
}

fn link(row: &Row) -> StoreResult<AuditLink> {
    Ok(AuditLink {
        record: audit(row)?,
        previous_hash: row.try_get("previous_hash").map_err(map_error)?,
        hash: row.try_get("hash").map_err(map_error)?,
    })
}

#[async_trait]
impl AuditLog for Backend {
    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64> {
        let mut transaction = self.write().await?;
        let seq = append_entry(&mut transaction, entry).await?;
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

    fn audited(&self, pending: Arc<PendingAudit>) -> Arc<dyn Store> {
        let mut store = self.clone();
        store.pending_audit = Some(pending);
        Arc::new(store)
    }

    async fn audit_chain_head(&self) -> StoreResult<AuditChainHead> {
        let row = sqlx::query("SELECT * FROM audit_chain WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(AuditChainHead {
            started_after: row.try_get("started_after").map_err(map_error)?,
            last_seq: row.try_get("last_seq").map_err(map_error)?,
            last_hash: row.try_get("last_hash").map_err(map_error)?,
        })
    }

    async fn audit_links(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditLink>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.iter().map(link).collect()
    }
}
