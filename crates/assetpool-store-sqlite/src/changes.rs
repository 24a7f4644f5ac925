//! The change feed and the settings: appending changes (in the transaction
//! of the mutation they announce), reading and pruning the feed, and the
//! settings every server shares (the issuer, the longest token lifetime).

use crate::rows::{map_error, millis};
use crate::store::SqliteStore;
use assetpool_core::clock::from_millis;
use assetpool_core::store::{Change, ChangeRecord, StoreError, StoreResult};
use assetpool_core::SecretHash;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

/// Appends `change` to the feed, in the transaction of `connection`.
pub(crate) async fn push_change(
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

impl SqliteStore {
    /// The recorded issuer, recording `candidate` if none is.
    pub(crate) async fn fetch_or_record_issuer(&self, candidate: &str) -> StoreResult<String> {
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

    /// Records a token lifetime; returns the longest recorded.
    pub(crate) async fn raise_token_ttl(&self, ttl_seconds: i64) -> StoreResult<i64> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('longest_token_ttl', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = MAX(CAST(value AS INTEGER), ?1)",
        )
        .bind(ttl_seconds)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        self.fetch_longest_token_ttl().await
    }

    /// The longest recorded token lifetime (0 if none).
    pub(crate) async fn fetch_longest_token_ttl(&self) -> StoreResult<i64> {
        let value: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'longest_token_ttl'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(value.unwrap_or(0))
    }

    /// The id of the newest change (0 if none).
    pub(crate) async fn fetch_latest_change_id(&self) -> StoreResult<i64> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM changes")
            .fetch_one(&self.feed)
            .await
            .map_err(map_error)?;
        Ok(latest.unwrap_or(0))
    }

    /// At most `limit` changes after `after`, oldest first.
    pub(crate) async fn fetch_changes_since(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<ChangeRecord>> {
        let found = sqlx::query(
            "SELECT id, kind, subject, until_at FROM changes WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.feed)
        .await
        .map_err(map_error)?;
        found.iter().map(change_from_row).collect()
    }

    /// Deletes changes older than `before`, always keeping the newest.
    pub(crate) async fn delete_changes_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let deleted = sqlx::query(
            "DELETE FROM changes WHERE created_at < ? AND id < (SELECT MAX(id) FROM changes)",
        )
        .bind(millis(before))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(deleted.rows_affected())
    }
}
