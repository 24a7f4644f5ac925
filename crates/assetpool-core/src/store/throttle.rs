//! The login throttle's counters and known addresses: the records and
//! [`ThrottleStore`]. The decisions are [`crate::throttle`]'s.

use super::StoreResult;
use crate::ids::KeyId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A login-failure counter: per (account, address), per address or per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCounter {
    /// Failures in the current window.
    pub failures: u32,
    /// The latest failure.
    pub last_failure: DateTime<Utc>,
    /// Attempts admitted and not yet settled (their password being checked).
    pub pending: u32,
    /// The latest attempt admitted.
    pub last_attempt: DateTime<Utc>,
}

/// Everything the login throttle needs to decide on one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures of this account from this address.
    pub pair: Option<FailureCounter>,
    /// Failures from this address, all accounts.
    pub address: Option<FailureCounter>,
    /// Failures of this account, all addresses.
    pub account: Option<FailureCounter>,
    /// Latest successful login of this account from this address.
    pub known_since: Option<DateTime<Utc>>,
}

/// A login attempt. It is counted as in flight before its password is
/// checked (so that concurrent attempts cannot all pass the throttle, and an
/// attempt whose client went away still counts), then settled: as a failure
/// ([`ThrottleStore::settle_login_failure`]), or taken back when it succeeds (see
/// [`super::SessionOpening`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// Normalised account (email), known or not.
    pub account: String,
    /// The client's throttle address: an IPv4 address, or the IPv6 network
    /// the throttle counts by (see [`crate::throttle::address_key`]).
    pub address: String,
    /// The API key the attempt came through (evidence for alerts); `None`
    /// for a sign-in to the web console, which takes no API key.
    pub api_key_id: Option<KeyId>,
    /// When.
    pub at: DateTime<Utc>,
    /// Counters whose latest failure is older than this start again from zero.
    pub window_start: DateTime<Utc>,
}

/// The throttle's decision on one attempt, taken from the counters as they
/// were before it: `Some(seconds to wait)` to refuse it. A pure function of
/// core ([`crate::throttle::retry_after`]), called by the store inside the
/// transaction that counts the attempt.
pub type ThrottleDecision<'a> = &'a (dyn Fn(&ThrottleState) -> Option<u64> + Send + Sync);

/// Outcome of [`ThrottleStore::count_login_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptAdmission {
    /// The attempt is counted; the counters and known-address record as they
    /// were before it.
    Counted(ThrottleState),
    /// The decision refused the attempt; nothing was counted.
    Refused {
        /// Seconds the client is asked to wait.
        retry_after_seconds: u64,
    },
}

/// Which counter a [`ThrottleEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// One account from one address.
    Pair,
    /// One address, all accounts.
    Address,
    /// One account, all addresses.
    Account,
}

impl ThrottleScope {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleScope::Pair => "pair",
            ThrottleScope::Address => "address",
            ThrottleScope::Account => "account",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pair" => Some(ThrottleScope::Pair),
            "address" => Some(ThrottleScope::Address),
            "account" => Some(ThrottleScope::Account),
            _ => None,
        }
    }
}

/// One stored failure counter, as support staff see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleEntry {
    /// Which counter.
    pub scope: ThrottleScope,
    /// Account (empty for the address scope).
    pub account: String,
    /// Address (empty for the account scope).
    pub address: String,
    /// The counter.
    pub counter: FailureCounter,
    /// The API key of the latest failure.
    pub api_key_id: Option<KeyId>,
}

/// The login throttle's counters and known addresses, shared by every server.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts a login attempt in flight against its pair, its address and
    /// its account, unless `decide` (given the counters as they were, with
    /// the known-address record) refuses it. Atomic: concurrent attempts are
    /// decided one after the other, each seeing those counted before it. An
    /// attempt refused by the counters as they stand is refused without
    /// waiting for the others.
    async fn count_login_attempt(
        &self,
        attempt: &LoginAttempt,
        decide: ThrottleDecision<'_>,
    ) -> StoreResult<AttemptAdmission>;
    /// Settles a counted attempt as a failure: one more failure for its
    /// pair, address and account (counters older than the attempt's window
    /// restart at one), one fewer in flight.
    async fn settle_login_failure(&self, attempt: &LoginAttempt) -> StoreResult<()>;
    /// Settles a counted attempt whose password was right but which opened
    /// no session (it asked for a scope the user may not have): taken back
    /// as a successful login's attempt is (see [`super::SessionOpening`]).
    async fn settle_login_refused(&self, attempt: &LoginAttempt) -> StoreResult<()>;
    /// The stored failure counters, of one account (with its pairs) or all,
    /// latest failure first.
    async fn login_throttles(&self, account: Option<&str>) -> StoreResult<Vec<ThrottleEntry>>;
    /// Clears an account's counters (its own and its pairs'); returns how many.
    async fn clear_login_throttle(&self, account: &str) -> StoreResult<u64>;
    /// Deletes failure counters last bumped before `failures_before` and known
    /// addresses last seen before `known_before` (housekeeping).
    async fn prune_login_throttle(
        &self,
        failures_before: DateTime<Utc>,
        known_before: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
