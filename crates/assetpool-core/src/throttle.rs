//! Login throttling without a lockout for the account's owner.
//!
//! Failures are counted per (account, client address), per client address and
//! per account. Over a limit, attempts are refused with a progressive delay
//! (doubling per extra failure, capped) rather than a permanent lock:
//!
//! - a pair over its limit refuses that address for that account, even with
//!   the right password;
//! - an address over its limit (credential stuffing) is refused for every account;
//! - an account over its (much higher) limit is refused from every address
//!   except those that logged in to it successfully in the last 30 days, so a
//!   stranger cannot lock the owner out.
//!
//! A success from an address clears that address's pair counter. Counters
//! restart after a quiet window. The counters live in storage (see
//! [`crate::Store::record_login_failure`]), so every server on the same
//! database throttles alike and support staff can see and clear them.

use crate::store::{FailureCounter, ThrottleState};
use chrono::{DateTime, Duration, Utc};

/// Limits of the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures allowed per (account, address) before delays start.
    pub per_pair: u32,
    /// Failures allowed per address (across accounts).
    pub per_address: u32,
    /// Failures allowed per account (across addresses).
    pub per_account: u32,
    /// First delay once a limit is passed.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Counters reset after this long without a failure.
    pub window: Duration,
    /// How long a successful address stays trusted for its account.
    pub known_address_for: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            per_pair: 5,
            per_address: 50,
            per_account: 50,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            window: Duration::minutes(15),
            known_address_for: Duration::days(30),
        }
    }
}

/// Seconds to wait if an attempt described by `state` must be refused at `now`.
pub fn retry_after(
    settings: &ThrottleSettings,
    state: &ThrottleState,
    now: DateTime<Utc>,
) -> Option<u64> {
    let mut wait = Duration::zero();
    if let Some(counter) = &state.pair {
        wait = wait.max(remaining(settings, counter, settings.per_pair, now));
    }
    if let Some(counter) = &state.address {
        wait = wait.max(remaining(settings, counter, settings.per_address, now));
    }
    let known = state
        .known_since
        .is_some_and(|since| now - since < settings.known_address_for);
    if !known {
        if let Some(counter) = &state.account {
            wait = wait.max(remaining(settings, counter, settings.per_account, now));
        }
    }
    if wait > Duration::zero() {
        let seconds = (wait.num_milliseconds() + 999) / 1000;
        Some(u64::try_from(seconds.max(1)).unwrap_or(1))
    } else {
        None
    }
}

fn remaining(
    settings: &ThrottleSettings,
    counter: &FailureCounter,
    limit: u32,
    now: DateTime<Utc>,
) -> Duration {
    if now - counter.last_failure >= settings.window || counter.failures < limit {
        return Duration::zero();
    }
    let excess = (counter.failures - limit).min(20);
    let delay = (settings.base_delay * 2i32.pow(excess)).min(settings.max_delay);
    (counter.last_failure + delay - now).max(Duration::zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn counter(failures: u32, last_failure: DateTime<Utc>) -> Option<FailureCounter> {
        Some(FailureCounter {
            failures,
            last_failure,
        })
    }

    #[test]
    fn under_every_limit_nothing_waits() {
        let settings = ThrottleSettings::default();
        let now = start();
        let state = ThrottleState {
            pair: counter(4, now),
            address: counter(49, now),
            account: counter(49, now),
            known_since: None,
        };
        assert_eq!(retry_after(&settings, &state, now), None);
    }

    #[test]
    fn delay_is_progressive_and_expires() {
        let settings = ThrottleSettings::default();
        let now = start();
        let mut state = ThrottleState {
            pair: counter(5, now),
            ..ThrottleState::default()
        };
        assert_eq!(retry_after(&settings, &state, now), Some(1));
        state.pair = counter(6, now);
        assert_eq!(retry_after(&settings, &state, now), Some(2));
        assert_eq!(
            retry_after(&settings, &state, now + Duration::seconds(3)),
            None
        );
        state.pair = counter(60, now);
        assert_eq!(retry_after(&settings, &state, now), Some(15 * 60));
        assert_eq!(retry_after(&settings, &state, now + settings.window), None);
    }

    #[test]
    fn a_known_address_is_exempt_from_the_account_limit_only() {
        let settings = ThrottleSettings::default();
        let now = start();
        let mut state = ThrottleState {
            account: counter(80, now),
            known_since: Some(now - Duration::days(29)),
            ..ThrottleState::default()
        };
        assert_eq!(retry_after(&settings, &state, now), None);
        state.known_since = Some(now - Duration::days(31));
        assert!(retry_after(&settings, &state, now).is_some());
        state.known_since = Some(now);
        state.address = counter(50, now);
        assert!(retry_after(&settings, &state, now).is_some());
    }
}
