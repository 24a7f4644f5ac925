//! The web console's sessions: opened (in the transaction that takes the
//! sign-in attempt back from the throttle, while the user is still enabled
//! and of the verified password version), read by the hash of the cookie's
//! secret with the user and the applications the user owns, touched, ended
//! and pruned; ended in the transaction that disables their user. Whether a session is live is core's rule
//! ([`ConsoleSession::is_live`]).

use super::rows::{self, map_error, millis};
use super::throttle::refund_login_attempt;
use crate::dialect::{Backend, Connection};
use assetpool_core::ids::{ApplicationId, SessionId};
use assetpool_core::store::{
    ConsoleSession, ConsoleSessionOpening, ConsoleSessionStore, StoreError, StoreResult,
};
use assetpool_core::SecretHash;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// Ends every live console session of a user, in the caller's transaction
/// (disabling the user: enabling again does not bring them back).
pub(crate) async fn end_console_sessions_of(
    connection: &mut Connection,
    user_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE console_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL",
    )
    .bind(user_id)
    .bind(millis(now))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl ConsoleSessionStore for Backend {
    async fn open_console_session(&self, opening: &ConsoleSessionOpening) -> StoreResult<bool> {
        let session = &opening.session;
        let mut transaction = self.write().await?;
        let unchanged = sqlx::query(concat!(
            "SELECT id FROM users WHERE id = $1 AND password_version = $2 AND disabled = FALSE",
            for_share!()
        ))
        .bind(session.user_id.as_str())
        .bind(session.password_version)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        if unchanged.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO console_sessions (id, secret_hash, user_id, password_version, \
             created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(session.id.as_str())
        .bind(session.secret_hash.0.as_slice())
        .bind(session.user_id.as_str())
        .bind(session.password_version)
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        refund_login_attempt(&mut transaction, &opening.attempt).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn console_session(
        &self,
        secret_hash: &SecretHash,
    ) -> StoreResult<Option<ConsoleSession>> {
        let Some(row) = sqlx::query(
            "SELECT u.*, c.id AS session_id, c.password_version AS session_password_version, \
             c.created_at AS session_created_at, c.last_seen_at, c.expires_at, c.ended_at \
             FROM console_sessions c JOIN users u ON u.id = c.user_id WHERE c.secret_hash = $1",
        )
        .bind(secret_hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?
        else {
            return Ok(None);
        };
        let user = rows::user(&row)?;
        let owned = sqlx::query(
            "SELECT application_id FROM application_members WHERE user_id = $1 \
             AND role = 'owner' ORDER BY application_id",
        )
        .bind(user.id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let owned_applications = owned
            .iter()
            .map(|row| rows::id::<ApplicationId>(row, "application_id"))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(ConsoleSession {
            id: rows::id(&row, "session_id")?,
            user,
            password_version: row.try_get("session_password_version").map_err(map_error)?,
            created_at: rows::time(&row, "session_created_at").map_err(map_error)?,
            last_seen_at: rows::time(&row, "last_seen_at").map_err(map_error)?,
            expires_at: rows::time(&row, "expires_at").map_err(map_error)?,
            ended_at: rows::optional_time(&row, "ended_at").map_err(map_error)?,
            owned_applications,
        }))
    }

    async fn touch_console_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        sqlx::query(concat!(
            "UPDATE console_sessions SET last_seen_at = ",
            greatest!(),
            "(last_seen_at, $2) WHERE id = $1"
        ))
        .bind(id.as_str())
        .bind(millis(now))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)
    }

    async fn end_console_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut transaction = self.write().await?;
        let done = sqlx::query(
            "UPDATE console_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id.as_str())
        .bind(millis(now))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn prune_console_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut transaction = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM console_sessions WHERE expires_at < $1 \
             OR (ended_at IS NOT NULL AND ended_at < $1)",
        )
        .bind(millis(before))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(done.rows_affected())
    }
}
