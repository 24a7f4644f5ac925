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
//! restart after a quiet window.
//!
//! An attempt is counted before its password is checked, in the same atomic
//! step that decides on it (see [`crate::store::ThrottleStore::count_login_attempt`]), and
//! refunded if it succeeds: concurrent guesses cannot all slip in before the
//! first is counted, and a guess whose client went away still counts.
//!
//! "Address" is an IPv4 address, or an IPv6 network of
//! [`ThrottleSettings::ipv6_prefix`] bits (a /64 by default: one ordinary host
//! holds a whole /64 and could take a fresh address for every guess). The counters live in storage (see
//! [`crate::store::ThrottleStore::count_login_attempt`]), so every server on the same
//! database throttles alike and support staff can see and clear them.

use crate::store::{FailureCounter, ThrottleState};
use chrono::{DateTime, Duration, Utc};
use std::net::IpAddr;

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
    /// IPv6 clients are counted (and remembered) by their network of this
    /// many leading bits (1 to 128; 128 counts single addresses).
    pub ipv6_prefix: u8,
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
            ipv6_prefix: 64,
        }
    }
}

/// The text a client address is counted under: an IPv4 address as itself
/// (an IPv4-mapped IPv6 address too), an IPv6 address as its network of
/// `ipv6_prefix` bits (`2001:db8:1:2::/64`), or as itself at 128 bits.
pub fn address_key(address: IpAddr, ipv6_prefix: u8) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_string();
            }
            let prefix = ipv6_prefix.clamp(1, 128);
            if prefix == 128 {
                return v6.to_string();
            }
            let mask = u128::MAX << (128 - u32::from(prefix));
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{network}/{prefix}")
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

/// Attempts in flight longer than this are taken for lost (a server that
/// stopped while checking them) and no longer count.
pub const PENDING_FOR: Duration = Duration::seconds(60);

/// The failures a decision counts, and the latest of them: the failures of
/// the window, plus the attempts in flight as if they had just failed (so
/// that concurrent guesses are decided as if each before them had failed).
fn effective(
    settings: &ThrottleSettings,
    counter: &FailureCounter,
    now: DateTime<Utc>,
) -> (u32, DateTime<Utc>) {
    let (mut failures, mut latest) = if now - counter.last_failure < settings.window {
        (counter.failures, counter.last_failure)
    } else {
        (0, counter.last_failure)
    };
    if counter.pending > 0 && now - counter.last_attempt < PENDING_FOR {
        failures = failures.saturating_add(counter.pending);
        latest = latest.max(counter.last_attempt);
    }
    (failures, latest)
}

fn remaining(
    settings: &ThrottleSettings,
    counter: &FailureCounter,
    limit: u32,
    now: DateTime<Utc>,
) -> Duration {
    let (failures, latest) = effective(settings, counter, now);
    if failures < limit {
        return Duration::zero();
    }
    let excess = (failures - limit).min(20);
    let delay = (settings.base_delay * 2i32.pow(excess)).min(settings.max_delay);
    (latest + delay - now).max(Duration::zero())
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
            pending: 0,
            last_attempt: last_failure,
        })
    }

    #[test]
    fn attempts_in_flight_count_as_fresh_failures_for_a_minute() {
        let settings = ThrottleSettings::default();
        let now = start();
        let in_flight = |failures, pending, last_attempt| ThrottleState {
            pair: Some(FailureCounter {
                failures,
                last_failure: now - Duration::hours(1),
                pending,
                last_attempt,
            }),
            ..ThrottleState::default()
        };
        // Old failures are forgotten; five attempts in flight are five failures.
        assert_eq!(retry_after(&settings, &in_flight(9, 4, now), now), None);
        assert_eq!(retry_after(&settings, &in_flight(9, 5, now), now), Some(1));
        // Attempts in flight for over a minute were lost.
        let lost = now - PENDING_FOR;
        assert_eq!(retry_after(&settings, &in_flight(0, 50, lost), now), None);
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

    #[test]
    fn ipv6_clients_count_by_network_and_ipv4_by_address() {
        let key = |text: &str, prefix| address_key(text.parse().unwrap(), prefix);
        assert_eq!(key("203.0.113.7", 64), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7", 64), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::/48");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 128), "2001:db8:1:2:aaaa::1");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 0), "::/1");
    }
}
