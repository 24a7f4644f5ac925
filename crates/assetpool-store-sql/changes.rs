//! The change feed and the settings: appending changes (in the transaction
//! of the mutation they announce, after its row locks), reading and pruning
//! the feed, and the settings every server shares (the issuer, the longest
//! token lifetime). The feed and the signing keys are read on a connection
//! of their own (`feed`), never waiting behind request traffic.

use super::rows::{map_error, millis};
use crate::dialect::{self, Backend, Connection, Row};
use assetpool_core::clock::from_millis;
use assetpool_core::store::{Change, ChangeFeed, ChangeRecord, StoreError, StoreResult};
use assetpool_core::SecretHash;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// Appends `change` to the feed and announces it, in the transaction of
/// `connection`.
pub(crate) async fn push_change(
    connection: &mut Connection,
    change: &Change,
    now: i64,
) -> StoreResult<()> {
    let (kind, subject, until) = match change {
        Change::ApiKey { key_hash } => ("api_key", Some(key_hash.to_hex()), None),
        Change::SessionRevoked { session_id, until } => (
            "session_revoked",
            Some(session_id.to_string()),
            Some(millis(*until)),
        ),
        Change::SigningKeys => ("signing_keys", None, None),
        Change::KeyDisabled { key_id, disabled } => (
            if *disabled {
                "api_key_disabled"
            } else {
                "api_key_enabled"
            },
            Some(key_id.to_string()),
            None,
        ),
    };
    dialect::lock_change_feed(connection).await?;
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
    dialect::announce_change(connection, id).await
}

fn change_from_row(row: &Row) -> StoreResult<ChangeRecord> {
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
            session_id: subject.ok_or_else(malformed)?.into(),
            until: from_millis(until.ok_or_else(malformed)?),
        },
        "signing_keys" => Change::SigningKeys,
        "api_key_disabled" | "api_key_enabled" => Change::KeyDisabled {
            key_id: subject.ok_or_else(malformed)?.into(),
            disabled: kind == "api_key_disabled",
        },
        _ => return Err(malformed()),
    };
    Ok(ChangeRecord { id, change })
}

#[async_trait]
impl ChangeFeed for Backend {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn issuer_or_record(&self, candidate: &str) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('issuer', $1) \
             ON CONFLICT (name) DO NOTHING",
        )
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
        sqlx::query(concat!(
            "INSERT INTO settings (name, value) \
             VALUES ('longest_token_ttl', CAST(CAST($1 AS BIGINT) AS TEXT)) \
             ON CONFLICT (name) DO UPDATE SET value = CAST(",
            greatest!(),
            "(CAST(settings.value AS BIGINT), CAST($1 AS BIGINT)) AS TEXT)"
        ))
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

    async fn latest_change_id(&self) -> StoreResult<i64> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM changes")
            .fetch_one(&self.feed)
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
        .fetch_all(&self.feed)
        .await
        .map_err(map_error)?;
        found.iter().map(change_from_row).collect()
    }

    async fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut transaction = self.write().await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(id) FROM changes WHERE created_at < $1 \
             AND id < (SELECT MAX(id) FROM changes)",
        )
        .bind(millis(before))
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        let Some(through) = through else {
            return Ok(0);
        };
        let deleted = sqlx::query("DELETE FROM changes WHERE id <= $1")
            .bind(through)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        // The watermark by which followers that fell behind find out.
        sqlx::query(concat!(
            "INSERT INTO settings (name, value) \
             VALUES ('changes_pruned_through', CAST(CAST($1 AS BIGINT) AS TEXT)) \
             ON CONFLICT (name) DO UPDATE SET value = CAST(",
            greatest!(),
            "(CAST(settings.value AS BIGINT), CAST($1 AS BIGINT)) AS TEXT)"
        ))
        .bind(through)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(deleted.rows_affected())
    }

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        let value: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(value AS BIGINT) FROM settings WHERE name = 'changes_pruned_through'",
        )
        .fetch_optional(&self.feed)
        .await
        .map_err(map_error)?;
        Ok(value.unwrap_or(0))
    }

    async fn wait_for_changes(&self, timeout: std::time::Duration) {
        self.wait_for_announcement(timeout).await;
    }
}
