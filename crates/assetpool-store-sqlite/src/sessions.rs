//! Login sessions and their refresh tokens: creation, spending a refresh
//! token exactly once (a spent token coming back revokes its session),
//! revocation, and the helpers that revoke sessions for other mutations.

use crate::changes::push_change;
use crate::rows::{self, map_error, millis};
use crate::store::SqliteStore;
use crate::throttle::refund_login_attempt;
use assetpool_core::clock::from_millis;
use assetpool_core::store::{
    Change, RefreshOutcome, RenewedSession, RevokedSession, SessionOpening, SpendRefreshToken,
    StoreResult,
};
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

/// Revokes the session of a reused refresh token and announces it until `until`.
async fn revoke_reused_session(
    connection: &mut SqliteConnection,
    session_id: &str,
    until: DateTime<Utc>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ?")
        .bind(now)
        .bind(session_id)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    let change = Change::SessionRevoked {
        session_id: session_id.to_owned(),
        until,
    };
    push_change(connection, &change, now).await
}

/// Revokes the live sessions matching `filter` (`user_id = ?` or `application_id = ?`).
pub(crate) async fn revoke_sessions_where(
    connection: &mut SqliteConnection,
    column: &str,
    value: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let statement = format!(
        "UPDATE sessions SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL \
         RETURNING id, access_expires_at"
    );
    let revoked = sqlx::query(&statement)
        .bind(millis(now))
        .bind(value)
        .fetch_all(&mut *connection)
        .await
        .map_err(map_error)?;
    for row in revoked {
        let until = from_millis(
            row.try_get::<i64, _>("access_expires_at")
                .map_err(map_error)?,
        );
        if until <= now {
            continue;
        }
        let change = Change::SessionRevoked {
            session_id: row.try_get("id").map_err(map_error)?,
            until,
        };
        push_change(connection, &change, millis(now)).await?;
    }
    Ok(())
}

/// Spends the presented refresh token, stores its successor and extends the
/// session's access expiry, in the transaction of `connection`.
async fn renew_session(
    connection: &mut SqliteConnection,
    spend: &SpendRefreshToken,
    session_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ? AND spent_at IS NULL")
        .bind(now)
        .bind(spend.refresh_hash.0.as_slice())
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)")
        .bind(spend.new_refresh_hash.0.as_slice())
        .bind(session_id)
        .bind(millis(spend.new_refresh_expires_at))
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    sqlx::query("UPDATE sessions SET access_expires_at = MAX(access_expires_at, ?) WHERE id = ?")
        .bind(millis(spend.access_expires_at))
        .bind(session_id)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

impl SqliteStore {
    /// Opens a verified login's session if the user's password is still of
    /// the verified version, the user is enabled and the key not revoked, and refunds its attempt; one write transaction.
    pub(crate) async fn insert_session(&self, opening: &SessionOpening) -> StoreResult<bool> {
        let session = &opening.session;
        let mut transaction = self.write().await?;
        let unchanged: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM users u, api_keys k WHERE u.id = ? AND u.password_version = ? \
             AND u.disabled = 0 AND k.id = ? AND k.revoked_at IS NULL",
        )
        .bind(&session.user_id)
        .bind(opening.password_version)
        .bind(&session.api_key_id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        if unchanged.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, application_id, api_key_id, created_at, \
             access_expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.application_id)
        .bind(&session.api_key_id)
        .bind(millis(session.created_at))
        .bind(millis(session.access_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(session.refresh_hash.0.as_slice())
        .bind(&session.id)
        .bind(millis(session.refresh_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        refund_login_attempt(&mut transaction, &opening.attempt).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    /// Spends a refresh token exactly once.
    pub(crate) async fn spend_token(
        &self,
        spend: &SpendRefreshToken,
    ) -> StoreResult<RefreshOutcome> {
        let mut transaction = self.write().await?;
        let row = sqlx::query(
            "SELECT r.session_id, r.expires_at, r.spent_at, s.application_id, s.revoked_at, \
             s.user_id, s.access_expires_at FROM refresh_tokens r \
             JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?",
        )
        .bind(spend.refresh_hash.0.as_slice())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id: String = row.try_get("session_id").map_err(map_error)?;
        let application_id: String = row.try_get("application_id").map_err(map_error)?;
        let session_revoked: Option<i64> = row.try_get("revoked_at").map_err(map_error)?;
        let spent_at: Option<i64> = row.try_get("spent_at").map_err(map_error)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(map_error)?;
        let user_id: String = row.try_get("user_id").map_err(map_error)?;
        let access_expires_at = from_millis(row.try_get("access_expires_at").map_err(map_error)?);
        if application_id != spend.application_id {
            return Ok(RefreshOutcome::Invalid);
        }
        let now = millis(spend.now);
        if spent_at.is_some() {
            // A spent token is reuse every time it comes back, also once its
            // session is revoked; the session is revoked and announced once.
            if session_revoked.is_none() {
                let until = access_expires_at.max(spend.access_expires_at);
                revoke_reused_session(&mut transaction, &session_id, until, now).await?;
                transaction.commit().await.map_err(map_error)?;
            }
            return Ok(RefreshOutcome::Reused { session_id });
        }
        if session_revoked.is_some() || expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        let user_row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(&user_id)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        let user = rows::user(&user_row)?;
        if user.disabled {
            return Ok(RefreshOutcome::Invalid);
        }
        renew_session(&mut transaction, spend, &session_id, now).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(RefreshOutcome::Renewed(RenewedSession { session_id, user }))
    }

    /// Revokes a session; false if it was already revoked or unknown.
    pub(crate) async fn end_session(
        &self,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut transaction = self.write().await?;
        let until: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL \
             RETURNING access_expires_at",
        )
        .bind(millis(now))
        .bind(session_id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        let Some(until) = until else {
            return Ok(false);
        };
        let change = Change::SessionRevoked {
            session_id: session_id.to_owned(),
            until: from_millis(until),
        };
        push_change(&mut transaction, &change, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    /// Revoked sessions whose access tokens have not all expired at `now`.
    pub(crate) async fn fetch_revoked_sessions(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RevokedSession>> {
        let found = sqlx::query(
            "SELECT id, access_expires_at FROM sessions \
             WHERE revoked_at IS NOT NULL AND access_expires_at > ?",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found
            .iter()
            .map(|row| {
                Ok(RevokedSession {
                    session_id: row.try_get("id").map_err(map_error)?,
                    until: from_millis(row.try_get("access_expires_at").map_err(map_error)?),
                })
            })
            .collect()
    }
}
