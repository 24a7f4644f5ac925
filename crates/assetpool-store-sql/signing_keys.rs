//! Token-signing keys: listing them, rotating the active key, storing the
//! first one, and sealing stored keys in place (`signing-keys seal`). Every
//! change to the set is announced on the change feed; the change-feed lock,
//! taken first, also serialises rotations and first keys.

use super::changes::push_change;
use super::rows::{self, map_error, millis};
use crate::dialect::{self, Backend, Connection};
use assetpool_core::ids::SigningKeyId;
use assetpool_core::store::{
    Change, ResealedSigningKey, SigningKeyRecord, SigningKeyStore, StoreError, StoreResult,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Inserts `key` as the active key and announces it, in the transaction of `connection`.
async fn insert_signing_key(
    connection: &mut Connection,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_key, created_at, \
         retired_at, retires_at, active) VALUES ($1, $2, $3, $4, $5, NULL, NULL, 1)",
    )
    .bind(key.kid.as_str())
    .bind(&key.algorithm)
    .bind(&key.sealed_private_key)
    .bind(key.public_key.as_slice())
    .bind(millis(key.created_at))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    push_change(connection, &Change::SigningKeys, millis(key.created_at)).await
}

#[async_trait]
impl SigningKeyStore for Backend {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let found = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid DESC")
            .fetch_all(&self.feed)
            .await
            .map_err(map_error)?;
        found.iter().map(rows::signing_key).collect()
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        // Serialise rotations (and first keys), so each sees the last one committed.
        dialect::lock_change_feed(&mut transaction).await?;
        sqlx::query(
            "UPDATE signing_keys SET active = NULL, retired_at = $1, retires_at = $2 WHERE active = 1",
        )
        .bind(millis(key.created_at))
        .bind(millis(retire_until))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        insert_signing_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let mut transaction = self.write().await?;
        dialect::lock_change_feed(&mut transaction).await?;
        let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE active = 1")
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        if active > 0 {
            return Ok(false);
        }
        insert_signing_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn reseal_signing_keys(&self, keys: &[ResealedSigningKey]) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        for key in keys {
            let updated = sqlx::query(
                "UPDATE signing_keys SET sealed_private_key = $1 \
                 WHERE kid = $2 AND sealed_private_key = $3",
            )
            .bind(&key.sealed)
            .bind(key.kid.as_str())
            .bind(&key.previous)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?
            .rows_affected();
            if updated != 1 {
                return Err(StoreError::Conflict(format!(
                    "signing key {} is unknown or changed meanwhile",
                    key.kid
                )));
            }
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn revoke_signing_key(
        &self,
        kid: &SigningKeyId,
        now: DateTime<Utc>,
    ) -> StoreResult<SigningKeyRecord> {
        let mut transaction = self.write().await?;
        // Serialised with rotations, so the key cannot become active meanwhile.
        dialect::lock_change_feed(&mut transaction).await?;
        let row = sqlx::query("SELECT * FROM signing_keys WHERE kid = $1")
            .bind(kid.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?
            .ok_or(StoreError::NotFound)?;
        let mut key = rows::signing_key(&row)?;
        if !key.can_revoke() {
            return Err(StoreError::Conflict(
                "the active signing key cannot be revoked".to_owned(),
            ));
        }
        let retires_at = key.retires_at.map_or(now, |retires_at| retires_at.min(now));
        sqlx::query("UPDATE signing_keys SET retires_at = $1 WHERE kid = $2")
            .bind(millis(retires_at))
            .bind(kid.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        push_change(&mut transaction, &Change::SigningKeys, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        key.retires_at = Some(retires_at);
        Ok(key)
    }
}
