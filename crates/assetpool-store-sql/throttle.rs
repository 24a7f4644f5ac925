//! Login-failure counters and known addresses, shared by every server on the
//! database. An attempt is decided (by core's throttle) and counted in flight
//! in one transaction that concurrent attempts on its account or address
//! wait for; it is settled as a failure or taken back when it succeeds.

use super::rows::{self, map_error, millis};
use crate::dialect::{self, Backend, Connection, Row};
use assetpool_core::clock::from_millis;
use assetpool_core::ids::KeyId;
use assetpool_core::store::{
    AttemptAdmission, FailureCounter, LoginAttempt, StoreError, StoreResult, ThrottleDecision,
    ThrottleEntry, ThrottleScope, ThrottleState, ThrottleStore,
};
use assetpool_core::throttle::PENDING_FOR;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// First half of the lock keys that serialise login attempts per account and
/// per address (the second half is a hash of the account or the address).
const LOGIN_ATTEMPT_LOCK: i32 = 0x6c6f_6769;

/// A counter as stored.
fn counter(row: &Row) -> StoreResult<FailureCounter> {
    let count = |column: &str| -> StoreResult<u32> {
        let value: i64 = row.try_get(column).map_err(map_error)?;
        Ok(u32::try_from(value.max(0)).unwrap_or(u32::MAX))
    };
    Ok(FailureCounter {
        failures: count("failures")?,
        last_failure: from_millis(row.try_get("last_failure").map_err(map_error)?),
        pending: count("pending")?,
        last_attempt: from_millis(row.try_get("last_attempt").map_err(map_error)?),
    })
}

/// The counters and known-address record of one attempt, read on
/// `connection` (in its transaction, if it has one).
async fn throttle_state(
    connection: &mut Connection,
    account: &str,
    address: &str,
) -> StoreResult<ThrottleState> {
    let rows = sqlx::query(
        "SELECT scope, failures, last_failure, pending, last_attempt FROM login_failures \
         WHERE (scope = 'pair' AND account = $1 AND address = $2) \
         OR (scope = 'address' AND account = '' AND address = $2) \
         OR (scope = 'account' AND account = $1 AND address = '')",
    )
    .bind(account)
    .bind(address)
    .fetch_all(&mut *connection)
    .await
    .map_err(map_error)?;
    let mut state = ThrottleState::default();
    for row in &rows {
        let scope: String = row.try_get("scope").map_err(map_error)?;
        let counter = counter(row)?;
        match ThrottleScope::parse(&scope) {
            Some(ThrottleScope::Pair) => state.pair = Some(counter),
            Some(ThrottleScope::Address) => state.address = Some(counter),
            Some(ThrottleScope::Account) => state.account = Some(counter),
            None => return Err(StoreError::Other(format!("unknown throttle scope {scope}"))),
        }
    }
    let known: Option<i64> = sqlx::query_scalar(
        "SELECT last_success FROM login_known_addresses WHERE account = $1 AND address = $2",
    )
    .bind(account)
    .bind(address)
    .fetch_optional(&mut *connection)
    .await
    .map_err(map_error)?;
    state.known_since = known.map(from_millis);
    Ok(state)
}

/// The three counters of an attempt, in the order every transaction touches
/// them: pair, address, account (so that two never wait for each other).
fn scopes(attempt: &LoginAttempt) -> [(&'static str, &str, &str); 3] {
    [
        ("pair", attempt.account.as_str(), attempt.address.as_str()),
        ("address", "", attempt.address.as_str()),
        ("account", attempt.account.as_str(), ""),
    ]
}

/// Takes a successful attempt back in the transaction of `connection`:
/// clears its pair, no longer counts it in flight on the address and
/// account counters, and remembers the address for the account. The
/// failures of the address and the account, and their times, are left as
/// they are: a success is not a failure.
pub(crate) async fn refund_login_attempt(
    connection: &mut Connection,
    attempt: &LoginAttempt,
) -> StoreResult<()> {
    let account = attempt.account.as_str();
    let address = attempt.address.as_str();
    sqlx::query(
        "DELETE FROM login_failures WHERE scope = 'pair' AND account = $1 AND address = $2",
    )
    .bind(account)
    .bind(address)
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    for (scope, account, address) in scopes(attempt).into_iter().skip(1) {
        sqlx::query(concat!(
            "UPDATE login_failures SET pending = ",
            greatest!(),
            "(pending - 1, 0) WHERE scope = $1 AND account = $2 AND address = $3"
        ))
        .bind(scope)
        .bind(account)
        .bind(address)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    }
    sqlx::query(
        "DELETE FROM login_failures WHERE failures = 0 AND pending = 0 AND \
         ((scope = 'address' AND account = '' AND address = $2) \
         OR (scope = 'account' AND account = $1 AND address = ''))",
    )
    .bind(account)
    .bind(address)
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    sqlx::query(concat!(
        "INSERT INTO login_known_addresses (account, address, last_success) VALUES ($1, $2, $3) \
         ON CONFLICT (account, address) DO UPDATE SET last_success = ",
        greatest!(),
        "(login_known_addresses.last_success, excluded.last_success)"
    ))
    .bind(account)
    .bind(address)
    .bind(millis(attempt.at))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl ThrottleStore for Backend {
    /// Decides on an attempt from the counters and counts it in flight, in
    /// one transaction that locks its account, then its address. An attempt
    /// the counters refuse as they stand is refused after a plain read,
    /// without waiting for the locks.
    async fn count_login_attempt(
        &self,
        attempt: &LoginAttempt,
        decide: ThrottleDecision<'_>,
    ) -> StoreResult<AttemptAdmission> {
        let mut connection = self.pool.acquire().await.map_err(map_error)?;
        let now = throttle_state(&mut connection, &attempt.account, &attempt.address).await?;
        drop(connection);
        if let Some(retry_after_seconds) = decide(&now) {
            return Ok(AttemptAdmission::Refused {
                retry_after_seconds,
            });
        }
        let mut transaction = self.write().await?;
        let account = format!("account\n{}", attempt.account);
        let address = format!("address\n{}", attempt.address);
        dialect::lock_subjects(&mut transaction, LOGIN_ATTEMPT_LOCK, &[&account, &address]).await?;
        let before = throttle_state(&mut transaction, &attempt.account, &attempt.address).await?;
        if let Some(retry_after_seconds) = decide(&before) {
            return Ok(AttemptAdmission::Refused {
                retry_after_seconds,
            });
        }
        let lost = millis(attempt.at - PENDING_FOR);
        for (scope, account, address) in scopes(attempt) {
            sqlx::query(concat!(
                "INSERT INTO login_failures (scope, account, address, failures, last_failure, \
                 api_key_id, pending, last_attempt) VALUES ($1, $2, $3, 0, 0, $4, 1, $5) \
                 ON CONFLICT (scope, account, address) DO UPDATE SET \
                 pending = CASE WHEN login_failures.last_attempt < $6 THEN 1 \
                 ELSE login_failures.pending + 1 END, last_attempt = ",
                greatest!(),
                "(login_failures.last_attempt, excluded.last_attempt), \
                 api_key_id = excluded.api_key_id"
            ))
            .bind(scope)
            .bind(account)
            .bind(address)
            .bind(attempt.api_key_id.as_ref().map(KeyId::as_str))
            .bind(millis(attempt.at))
            .bind(lost)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(AttemptAdmission::Counted(before))
    }

    async fn settle_login_failure(&self, attempt: &LoginAttempt) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        for (scope, account, address) in scopes(attempt) {
            sqlx::query(concat!(
                "INSERT INTO login_failures (scope, account, address, failures, last_failure, \
                 api_key_id, pending, last_attempt) VALUES ($1, $2, $3, 1, $4, $5, 0, $4) \
                 ON CONFLICT (scope, account, address) DO UPDATE SET \
                 failures = CASE WHEN login_failures.last_failure < $6 THEN 1 \
                 ELSE login_failures.failures + 1 END, last_failure = ",
                greatest!(),
                "(login_failures.last_failure, excluded.last_failure), pending = ",
                greatest!(),
                "(login_failures.pending - 1, 0), api_key_id = excluded.api_key_id"
            ))
            .bind(scope)
            .bind(account)
            .bind(address)
            .bind(millis(attempt.at))
            .bind(attempt.api_key_id.as_ref().map(KeyId::as_str))
            .bind(millis(attempt.window_start))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn settle_login_refused(&self, attempt: &LoginAttempt) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        refund_login_attempt(&mut transaction, attempt).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn login_throttles(&self, account: Option<&str>) -> StoreResult<Vec<ThrottleEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM login_failures WHERE (CAST($1 AS TEXT) IS NULL OR account = $1) \
             AND failures > 0 ORDER BY last_failure DESC, scope, account, address LIMIT 1000",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                let scope: String = row.try_get("scope").map_err(map_error)?;
                Ok(ThrottleEntry {
                    scope: ThrottleScope::parse(&scope).ok_or_else(|| {
                        StoreError::Other(format!("unknown throttle scope {scope}"))
                    })?,
                    account: row.try_get("account").map_err(map_error)?,
                    address: row.try_get("address").map_err(map_error)?,
                    counter: counter(row)?,
                    api_key_id: rows::optional_id(row, "api_key_id")?,
                })
            })
            .collect()
    }

    async fn clear_login_throttle(&self, account: &str) -> StoreResult<u64> {
        let mut transaction = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM login_failures WHERE account = $1 AND scope IN ('pair', 'account')",
        )
        .bind(account)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(done.rows_affected())
    }

    /// Two statements, each atomic on its own: no transaction is held across
    /// them.
    async fn prune_login_throttle(
        &self,
        failures_before: DateTime<Utc>,
        known_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let failures =
            sqlx::query("DELETE FROM login_failures WHERE last_failure < $1 AND last_attempt < $1")
                .bind(millis(failures_before))
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
        let known = sqlx::query("DELETE FROM login_known_addresses WHERE last_success < $1")
            .bind(millis(known_before))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(failures.rows_affected() + known.rows_affected())
    }
}
