//! Login sessions and their refresh tokens: opening a verified login's
//! session, spending a refresh token exactly once (what spending comes to is
//! core's rule, [`SpendRefreshToken::decide`]), revocation, and the helpers
//! that revoke sessions for other mutations. Spending locks the token and
//! session rows, and opening share-locks the user, key and application rows,
//! so both happen once across servers and never race a password change, a
//! disable, a revocation or a change of the application's members.

use super::applications::admits_user;
use super::changes::push_change;
use super::rows::{self, map_error, millis};
use super::throttle::refund_login_attempt;
use crate::dialect::{Backend, Connection, Row};
use assetpool_core::clock::from_millis;
use assetpool_core::ids::SessionId;
use assetpool_core::store::{
    Change, PresentedRefreshToken, RefreshOutcome, RenewedSession, RevokedSession, SessionOpening,
    SessionStore, SpendDecision, SpendRefreshToken, StoreResult,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// Revokes the live sessions whose `column` (`user_id`, `application_id` or
/// `api_key_id`) is `value`, and announces each whose access tokens have not expired.
pub(crate) async fn revoke_sessions_where(
    connection: &mut Connection,
    column: &str,
    value: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let statement = format!(
        "UPDATE sessions SET revoked_at = $1 WHERE {column} = $2 AND revoked_at IS NULL \
         RETURNING id, access_expires_at"
    );
    let revoked = sqlx::query(&statement)
        .bind(millis(now))
        .bind(value)
        .fetch_all(&mut *connection)
        .await
        .map_err(map_error)?;
    announce_revoked(connection, revoked, now).await
}

/// Announces the sessions of `revoked` (rows of `id, access_expires_at`
/// just revoked at `now`) whose access tokens have not expired.
pub(crate) async fn announce_revoked(
    connection: &mut Connection,
    revoked: Vec<Row>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for row in revoked {
        let until = from_millis(
            row.try_get::<i64, _>("access_expires_at")
                .map_err(map_error)?,
        );
        if until <= now {
            continue;
        }
        let change = Change::SessionRevoked {
            session_id: rows::id(&row, "id")?,
            until,
        };
        push_change(connection, &change, millis(now)).await?;
    }
    Ok(())
}

/// Revokes session `session_id` if it is live, and announces it while its
/// access tokens have not expired, in the transaction of `connection`.
/// Returns the latest expiry of its access tokens, `None` when it was
/// already revoked or is unknown.
pub(crate) async fn revoke_session_in(
    connection: &mut Connection,
    session_id: &SessionId,
    now: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
    let until: Option<i64> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
         RETURNING access_expires_at",
    )
    .bind(millis(now))
    .bind(session_id.as_str())
    .fetch_optional(&mut *connection)
    .await
    .map_err(map_error)?;
    let Some(until) = until.map(from_millis) else {
        return Ok(None);
    };
    if until > now {
        let change = Change::SessionRevoked {
            session_id: session_id.to_owned(),
            until,
        };
        push_change(connection, &change, millis(now)).await?;
    }
    Ok(Some(until))
}

/// The refresh token of `hash` with its session and user, the token and
/// session rows locked for the rest of the transaction.
async fn presented_token(
    connection: &mut Connection,
    hash: &[u8],
) -> StoreResult<Option<PresentedRefreshToken>> {
    let row = sqlx::query(concat!(
        "SELECT r.session_id, r.expires_at, r.spent_at, s.application_id, s.revoked_at, \
         s.user_id, s.access_expires_at, s.api_key_id, s.scopes, \
         k.disabled_at AS key_disabled_at \
         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
         JOIN api_keys k ON k.id = s.api_key_id WHERE r.token_hash = $1",
        for_update!("r, s")
    ))
    .bind(hash)
    .fetch_optional(&mut *connection)
    .await
    .map_err(map_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user_id: String = row.try_get("user_id").map_err(map_error)?;
    let user_row = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(user_id.as_str())
        .fetch_one(&mut *connection)
        .await
        .map_err(map_error)?;
    let application_id: String = row.try_get("application_id").map_err(map_error)?;
    let admitted = admits_user(connection, &application_id, &user_id, false).await?;
    Ok(Some(PresentedRefreshToken {
        session_id: rows::id(&row, "session_id")?,
        application_id: rows::id(&row, "application_id")?,
        expires_at: from_millis(row.try_get("expires_at").map_err(map_error)?),
        spent: row
            .try_get::<Option<i64>, _>("spent_at")
            .map_err(map_error)?
            .is_some(),
        session_revoked: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(map_error)?
            .is_some(),
        access_expires_at: from_millis(row.try_get("access_expires_at").map_err(map_error)?),
        user: rows::user(&user_row)?,
        api_key_id: rows::id(&row, "api_key_id")?,
        key_disabled: row
            .try_get::<Option<i64>, _>("key_disabled_at")
            .map_err(map_error)?
            .is_some(),
        admitted,
        scopes: rows::scopes(&row, "scopes")?,
    }))
}

/// Spends the presented refresh token, stores its successor and extends the
/// session's access expiry, in the transaction of `connection`.
async fn renew_session(
    connection: &mut Connection,
    spend: &SpendRefreshToken,
    session_id: &SessionId,
) -> StoreResult<()> {
    let now = millis(spend.now);
    sqlx::query(
        "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL",
    )
    .bind(now)
    .bind(spend.refresh_hash.0.as_slice())
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(spend.new_refresh_hash.0.as_slice())
    .bind(session_id.as_str())
    .bind(millis(spend.new_refresh_expires_at))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    sqlx::query(concat!(
        "UPDATE sessions SET access_expires_at = ",
        greatest!(),
        "(access_expires_at, $1) WHERE id = $2"
    ))
    .bind(millis(spend.access_expires_at))
    .bind(session_id.as_str())
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl SessionStore for Backend {
    async fn open_session(&self, opening: &SessionOpening) -> StoreResult<bool> {
        let session = &opening.session;
        let mut transaction = self.write().await?;
        let unchanged = sqlx::query(concat!(
            "SELECT u.scopes FROM users u, api_keys k WHERE u.id = $1 \
             AND u.password_version = $2 AND u.disabled = FALSE AND k.id = $3 \
             AND k.revoked_at IS NULL",
            for_share!()
        ))
        .bind(session.user_id.as_str())
        .bind(opening.password_version)
        .bind(session.api_key_id.as_str())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        let Some(unchanged) = unchanged else {
            return Ok(false);
        };
        // The grant was decided from the user's scopes as read before the
        // password check: a change of them since wins.
        if rows::scopes(&unchanged, "scopes")? != opening.user_scopes
            || !admits_user(
                &mut transaction,
                session.application_id.as_str(),
                session.user_id.as_str(),
                true,
            )
            .await?
        {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, application_id, api_key_id, created_at, \
             access_expires_at, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session.id.as_str())
        .bind(session.user_id.as_str())
        .bind(session.application_id.as_str())
        .bind(session.api_key_id.as_str())
        .bind(millis(session.created_at))
        .bind(millis(session.access_expires_at))
        .bind(rows::scope_text(session.scopes.as_ref()))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(session.refresh_hash.0.as_slice())
        .bind(session.id.as_str())
        .bind(millis(session.refresh_expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        refund_login_attempt(&mut transaction, &opening.attempt).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn spend_refresh_token(&self, spend: &SpendRefreshToken) -> StoreResult<RefreshOutcome> {
        let mut transaction = self.write().await?;
        let Some(found) =
            presented_token(&mut transaction, spend.refresh_hash.0.as_slice()).await?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        match spend.decide(&found) {
            SpendDecision::Refuse => Ok(RefreshOutcome::Invalid),
            SpendDecision::Reuse { revoke_until } => {
                if let Some(until) = revoke_until {
                    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2")
                        .bind(millis(spend.now))
                        .bind(found.session_id.as_str())
                        .execute(&mut *transaction)
                        .await
                        .map_err(map_error)?;
                    let change = Change::SessionRevoked {
                        session_id: found.session_id.clone(),
                        until,
                    };
                    push_change(&mut transaction, &change, millis(spend.now)).await?;
                    transaction.commit().await.map_err(map_error)?;
                }
                Ok(RefreshOutcome::Reused {
                    session_id: found.session_id,
                })
            }
            SpendDecision::Renew => {
                renew_session(&mut transaction, spend, &found.session_id).await?;
                transaction.commit().await.map_err(map_error)?;
                Ok(RefreshOutcome::Renewed(RenewedSession {
                    session_id: found.session_id,
                    user: found.user,
                    api_key_id: found.api_key_id,
                    scopes: found.scopes,
                }))
            }
        }
    }

    async fn revoke_session(
        &self,
        session_id: &SessionId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut transaction = self.write().await?;
        if revoke_session_in(&mut transaction, session_id, now)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn revoked_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<RevokedSession>> {
        let found = sqlx::query(
            "SELECT id, access_expires_at FROM sessions \
             WHERE revoked_at IS NOT NULL AND access_expires_at > $1",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found
            .iter()
            .map(|row| {
                Ok(RevokedSession {
                    session_id: rows::id(row, "id")?,
                    until: from_millis(row.try_get("access_expires_at").map_err(map_error)?),
                })
            })
            .collect()
    }
}
