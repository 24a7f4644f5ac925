//! User accounts: creation, lookup, lists in creation order, passwords,
//! disabling and scopes. Changing a password advances the password version
//! and, like disabling, revokes the user's sessions; changing the scopes
//! revokes those core's rule says do not survive it.

use super::console_sessions::end_console_sessions_of;
use super::rows::{self, map_error, millis};
use super::sessions::{revoke_session_in, revoke_sessions_where};
use crate::dialect::Backend;
use assetpool_core::ids::{SessionId, UserId};
use assetpool_core::scopes::session_survives;
use assetpool_core::store::{CreationPage, StoreError, StoreResult, UserRecord, UserStore};
use assetpool_core::ScopeSet;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[async_trait]
impl UserStore for Backend {
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, admin, disabled, created_at, \
             password_version, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.admin)
        .bind(user.disabled)
        .bind(millis(user.created_at))
        .bind(user.password_version)
        .bind(rows::scope_text(user.scopes.as_ref()))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self, page: &CreationPage) -> StoreResult<Vec<UserRecord>> {
        let (after_time, after_id) = page.after.as_ref().map_or((None, None), |(time, id)| {
            (Some(millis(*time)), Some(id.as_str()))
        });
        let found = sqlx::query(concat!(
            "SELECT * FROM users WHERE CAST($1 AS BIGINT) IS NULL OR created_at > $1 \
             OR (created_at = $1 AND id",
            collate_c!(),
            " > $2) ORDER BY created_at, id",
            collate_c!(),
            " LIMIT $3"
        ))
        .bind(after_time)
        .bind(after_id)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(rows::user).collect()
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, password_version = password_version + 1 \
             WHERE id = $2",
        )
        .bind(password_hash)
        .bind(user_id.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        revoke_sessions_where(&mut transaction, "user_id", user_id.as_str(), now).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn upgrade_password_hash(
        &self,
        user_id: &UserId,
        password_version: i64,
        new_hash: &str,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_version = $3",
        )
        .bind(new_hash)
        .bind(user_id.as_str())
        .bind(password_version)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn set_user_disabled(
        &self,
        user_id: &UserId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let updated = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(user_id.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if disabled {
            revoke_sessions_where(&mut transaction, "user_id", user_id.as_str(), now).await?;
            end_console_sessions_of(&mut transaction, user_id.as_str(), now).await?;
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn set_user_scopes(
        &self,
        user_id: &UserId,
        scopes: Option<&ScopeSet>,
        now: DateTime<Utc>,
    ) -> StoreResult<(UserRecord, u64)> {
        let mut transaction = self.write().await?;
        let row = sqlx::query("UPDATE users SET scopes = $1 WHERE id = $2 RETURNING *")
            .bind(rows::scope_text(scopes))
            .bind(user_id.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?
            .ok_or(StoreError::NotFound)?;
        let user = rows::user(&row)?;
        let live = sqlx::query(concat!(
            "SELECT id, scopes FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            for_update!()
        ))
        .bind(user_id.as_str())
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        let mut revoked = 0;
        for session in &live {
            let granted = rows::scopes(session, "scopes")?;
            if !session_survives(granted.as_ref(), scopes) {
                let session_id: SessionId = rows::id(session, "id")?;
                revoke_session_in(&mut transaction, &session_id, now).await?;
                revoked += 1;
            }
        }
        transaction.commit().await.map_err(map_error)?;
        Ok((user, revoked))
    }
}
