//! Login-failure counters and known addresses, shared by every server on the
//! database.

use crate::rows::{map_error, millis};
use crate::store::SqliteStore;
use assetpool_core::clock::from_millis;
use assetpool_core::store::{
    AttemptAdmission, FailureCounter, LoginAttempt, StoreError, StoreResult, ThrottleDecision,
    ThrottleEntry, ThrottleScope, ThrottleState,
};
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

/// The counters and known-address record of one attempt, read in the
/// transaction of `connection`.
async fn throttle_state(
    connection: &mut SqliteConnection,
    account: &str,
    address: &str,
) -> StoreResult<ThrottleState> {
    let rows = sqlx::query(
        "SELECT scope, failures, last_failure FROM login_failures \
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
        let counter = FailureCounter {
            failures: u32::try_from(row.try_get::<i64, _>("failures").map_err(map_error)?)
                .unwrap_or(u32::MAX),
            last_failure: from_millis(row.try_get("last_failure").map_err(map_error)?),
        };
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

/// Refunds a successful attempt in the transaction of `connection`: clears
/// its pair, takes its failure off the address and account counters, and
/// remembers the address for the account.
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
    for (scope, account, address) in [("address", "", address), ("account", account, "")] {
        sqlx::query(
            "UPDATE login_failures SET failures = failures - 1 \
             WHERE scope = ? AND account = ? AND address = ? AND failures > 0",
        )
        .bind(scope)
        .bind(account)
        .bind(address)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    }
    sqlx::query(
        "DELETE FROM login_failures WHERE failures <= 0 AND \
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
    /// Decides on an attempt from the counters and counts it, in one write
    /// transaction (`BEGIN IMMEDIATE` serialises concurrent attempts).
    pub(crate) async fn count_attempt(
        &self,
        attempt: &LoginAttempt,
        decide: ThrottleDecision<'_>,
    ) -> StoreResult<AttemptAdmission> {
        let mut transaction = self.write().await?;
        let before = throttle_state(&mut transaction, &attempt.account, &attempt.address).await?;
        if let Some(retry_after_seconds) = decide(&before) {
            return Ok(AttemptAdmission::Refused {
                retry_after_seconds,
            });
        }
        let scopes = [
            ("pair", attempt.account.as_str(), attempt.address.as_str()),
            ("address", "", attempt.address.as_str()),
            ("account", attempt.account.as_str(), ""),
        ];
        for (scope, account, address) in scopes {
            sqlx::query(
                "INSERT INTO login_failures \
                 (scope, account, address, failures, last_failure, api_key_id) \
                 VALUES (?1, ?2, ?3, 1, ?4, ?5) \
                 ON CONFLICT (scope, account, address) DO UPDATE SET \
                 failures = CASE WHEN last_failure < ?6 THEN 1 ELSE failures + 1 END, \
                 last_failure = MAX(last_failure, excluded.last_failure), \
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
        transaction.commit().await.map_err(map_error)?;
        Ok(AttemptAdmission::Counted(before))
    }

    /// Lists counters, of one account or all, latest first.
    pub(crate) async fn fetch_throttles(
        &self,
        account: Option<&str>,
    ) -> StoreResult<Vec<ThrottleEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM login_failures WHERE ?1 IS NULL OR account = ?1 \
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
                    counter: FailureCounter {
                        failures: u32::try_from(
                            row.try_get::<i64, _>("failures").map_err(map_error)?,
                        )
                        .unwrap_or(u32::MAX),
                        last_failure: from_millis(row.try_get("last_failure").map_err(map_error)?),
                    },
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
        let failures = sqlx::query("DELETE FROM login_failures WHERE last_failure < ?")
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
