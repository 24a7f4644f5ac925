//! Login-failure counters and known addresses, shared by every server on the
//! database.

use crate::rows::{map_error, millis};
use crate::store::SqliteStore;
use assetpool_core::clock::from_millis;
use assetpool_core::store::{
    AttemptAdmission, FailureCounter, LoginAttempt, StoreError, StoreResult, ThrottleDecision,
    ThrottleEntry, ThrottleScope, ThrottleState,
};
use assetpool_core::throttle::PENDING_FOR;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

/// A counter as stored.
fn counter(row: &SqliteRow) -> StoreResult<FailureCounter> {
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
    connection: &mut SqliteConnection,
    account: &str,
    address: &str,
) -> StoreResult<ThrottleState> {
    let rows = sqlx::query(
        "SELECT scope, failures, last_failure, pending, last_attempt FROM login_failures \
         WHERE (scope = 'pair' AND account = ?1 AND address = ?2) \
         OR (scope = 'address' AND account = '' AND address = ?2) \
         OR (scope = 'account' AND account = ?1 AND address = '')",
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
        "SELECT last_success FROM login_known_addresses WHERE account = ? AND address = ?",
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
/// them: pair, address, account.
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
    connection: &mut SqliteConnection,
    attempt: &LoginAttempt,
) -> StoreResult<()> {
    let account = attempt.account.as_str();
    let address = attempt.address.as_str();
    sqlx::query("DELETE FROM login_failures WHERE scope = 'pair' AND account = ? AND address = ?")
        .bind(account)
        .bind(address)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    for (scope, account, address) in scopes(attempt).into_iter().skip(1) {
        sqlx::query(
            "UPDATE login_failures SET pending = MAX(pending - 1, 0) \
             WHERE scope = ? AND account = ? AND address = ?",
        )
        .bind(scope)
        .bind(account)
        .bind(address)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    }
    sqlx::query(
        "DELETE FROM login_failures WHERE failures = 0 AND pending = 0 AND \
         ((scope = 'address' AND account = '' AND address = ?2) \
         OR (scope = 'account' AND account = ?1 AND address = ''))",
    )
    .bind(account)
    .bind(address)
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    sqlx::query(
        "INSERT INTO login_known_addresses (account, address, last_success) VALUES (?, ?, ?) \
         ON CONFLICT (account, address) DO UPDATE SET \
         last_success = MAX(last_success, excluded.last_success)",
    )
    .bind(account)
    .bind(address)
    .bind(millis(attempt.at))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    Ok(())
}

impl SqliteStore {
    /// Decides on an attempt from the counters and counts it in flight, in
    /// one write transaction (`BEGIN IMMEDIATE` serialises concurrent
    /// attempts). An attempt the counters refuse as they stand is refused
    /// after a plain read, without waiting for the write lock.
    pub(crate) async fn count_attempt(
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
        let before = throttle_state(&mut transaction, &attempt.account, &attempt.address).await?;
        if let Some(retry_after_seconds) = decide(&before) {
            return Ok(AttemptAdmission::Refused {
                retry_after_seconds,
            });
        }
        let lost = millis(attempt.at - PENDING_FOR);
        for (scope, account, address) in scopes(attempt) {
            sqlx::query(
                "INSERT INTO login_failures (scope, account, address, failures, last_failure, \
                 api_key_id, pending, last_attempt) VALUES (?1, ?2, ?3, 0, 0, ?4, 1, ?5) \
                 ON CONFLICT (scope, account, address) DO UPDATE SET \
                 pending = CASE WHEN last_attempt < ?6 THEN 1 ELSE pending + 1 END, \
                 last_attempt = MAX(last_attempt, excluded.last_attempt), \
                 api_key_id = excluded.api_key_id",
            )
            .bind(scope)
            .bind(account)
            .bind(address)
            .bind(&attempt.api_key_id)
            .bind(millis(attempt.at))
            .bind(lost)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(AttemptAdmission::Counted(before))
    }

    /// Settles an attempt as a failure on its three counters.
    pub(crate) async fn settle_failure(&self, attempt: &LoginAttempt) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        for (scope, account, address) in scopes(attempt) {
            sqlx::query(
                "INSERT INTO login_failures (scope, account, address, failures, last_failure, \
                 api_key_id, pending, last_attempt) VALUES (?1, ?2, ?3, 1, ?4, ?5, 0, ?4) \
                 ON CONFLICT (scope, account, address) DO UPDATE SET \
                 failures = CASE WHEN last_failure < ?6 THEN 1 ELSE failures + 1 END, \
                 last_failure = MAX(last_failure, excluded.last_failure), \
                 pending = MAX(pending - 1, 0), \
                 api_key_id = excluded.api_key_id",
            )
            .bind(scope)
            .bind(account)
            .bind(address)
            .bind(millis(attempt.at))
            .bind(&attempt.api_key_id)
            .bind(millis(attempt.window_start))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)
    }

    /// Lists counters, of one account or all, latest first.
    pub(crate) async fn fetch_throttles(
        &self,
        account: Option<&str>,
    ) -> StoreResult<Vec<ThrottleEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM login_failures WHERE (?1 IS NULL OR account = ?1) AND failures > 0 \
             ORDER BY last_failure DESC, scope, account, address LIMIT 1000",
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
                    api_key_id: row.try_get("api_key_id").map_err(map_error)?,
                })
            })
            .collect()
    }

    /// Clears an account's own and pair counters.
    pub(crate) async fn clear_throttle(&self, account: &str) -> StoreResult<u64> {
        let mut transaction = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM login_failures WHERE account = ? AND scope IN ('pair', 'account')",
        )
        .bind(account)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(done.rows_affected())
    }

    /// Deletes quiet counters and old known addresses (two statements, each
    /// atomic on its own: no transaction is held across them).
    pub(crate) async fn prune_throttle(
        &self,
        failures_before: DateTime<Utc>,
        known_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let failures =
            sqlx::query("DELETE FROM login_failures WHERE last_failure < ?1 AND last_attempt < ?1")
                .bind(millis(failures_before))
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
        let known = sqlx::query("DELETE FROM login_known_addresses WHERE last_success < ?")
            .bind(millis(known_before))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(failures.rows_affected() + known.rows_affected())
    }
}
