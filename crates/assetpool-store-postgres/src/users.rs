//! User accounts: creation, lookup, passwords and disabling. Changing a
//! password or disabling a user revokes the user's sessions.

use crate::rows::{self, map_error, millis};
use crate::sessions::revoke_sessions_where;
use crate::store::PostgresStore;
use assetpool_core::store::{StoreError, StoreResult, UserRecord};
use chrono::{DateTime, Utc};

impl PostgresStore {
    /// Creates a user.
    pub(crate) async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, admin, disabled, created_at, \
             password_version) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.admin)
        .bind(user.disabled)
        .bind(millis(user.created_at))
        .bind(user.password_version)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    /// Finds a user by normalised email.
    pub(crate) async fn fetch_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::user).transpose()
    }

    /// Lists users, oldest first.
    pub(crate) async fn fetch_users(&self) -> StoreResult<Vec<UserRecord>> {
        let found = sqlx::query("SELECT * FROM users ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        found.iter().map(rows::user).collect()
    }

    /// Replaces a password hash and revokes the user's sessions.
    pub(crate) async fn replace_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, password_version = password_version + 1 \
             WHERE id = $2",
        )
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        revoke_sessions_where(&mut transaction, "user_id", user_id, now).await?;
        transaction.commit().await.map_err(map_error)
    }

    /// Replaces a password hash, keeping the user's sessions, if the
    /// password is still of `password_version`.
    pub(crate) async fn update_password_hash(
        &self,
        user_id: &str,
        password_version: i64,
        new_hash: &str,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_version = $3",
        )
        .bind(new_hash)
        .bind(user_id)
        .bind(password_version)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(updated.rows_affected() == 1)
    }

    /// Disables or enables a user; disabling revokes the user's sessions.
    pub(crate) async fn update_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let updated = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(user_id)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if disabled {
            revoke_sessions_where(&mut transaction, "user_id", user_id, now).await?;
        }
        transaction.commit().await.map_err(map_error)
    }
}
