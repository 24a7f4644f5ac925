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
//! decay after a quiet window. State lives in memory on each server.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

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
    /// Most entries per table before the oldest quiet ones are dropped.
    pub max_entries: usize,
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
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    last_failure: DateTime<Utc>,
}

#[derive(Default)]
struct Tables {
    pairs: HashMap<(String, IpAddr), Counter>,
    addresses: HashMap<IpAddr, Counter>,
    accounts: HashMap<String, Counter>,
    known: HashMap<(String, IpAddr), DateTime<Utc>>,
}

/// The in-memory login throttle.
pub struct LoginThrottle {
    settings: ThrottleSettings,
    tables: Mutex<Tables>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LoginThrottle")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LoginThrottle {
    /// A throttle with `settings`.
    pub fn new(settings: ThrottleSettings) -> Self {
        LoginThrottle {
            settings,
            tables: Mutex::new(Tables::default()),
        }
    }

    /// Seconds to wait if an attempt on `account` from `address` must be refused now.
    pub fn check(&self, account: &str, address: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        let tables = self.tables.lock().ok()?;
        let settings = &self.settings;
        let pair_key = (account.to_owned(), address);
        let mut wait = Duration::zero();
        if let Some(counter) = tables.pairs.get(&pair_key) {
            wait = wait.max(self.remaining(counter, settings.per_pair, now));
        }
        if let Some(counter) = tables.addresses.get(&address) {
            wait = wait.max(self.remaining(counter, settings.per_address, now));
        }
        let known = tables
            .known
            .get(&pair_key)
            .is_some_and(|since| now - *since < settings.known_address_for);
        if !known {
            if let Some(counter) = tables.accounts.get(account) {
                wait = wait.max(self.remaining(counter, settings.per_account, now));
            }
        }
        if wait > Duration::zero() {
            let seconds = (wait.num_milliseconds() + 999) / 1000;
            Some(u64::try_from(seconds.max(1)).unwrap_or(1))
        } else {
            None
        }
    }

    /// Records a failed attempt.
    pub fn record_failure(&self, account: &str, address: IpAddr, now: DateTime<Utc>) {
        let Ok(mut tables) = self.tables.lock() else {
            return;
        };
        let window = self.settings.window;
        let max_entries = self.settings.max_entries;
        bump(
            &mut tables.pairs,
            (account.to_owned(), address),
            now,
            window,
            max_entries,
        );
        bump(&mut tables.addresses, address, now, window, max_entries);
        bump(
            &mut tables.accounts,
            account.to_owned(),
            now,
            window,
            max_entries,
        );
    }

    /// Records a successful login: clears the pair and remembers the address.
    pub fn record_success(&self, account: &str, address: IpAddr, now: DateTime<Utc>) {
        let Ok(mut tables) = self.tables.lock() else {
            return;
        };
        let pair_key = (account.to_owned(), address);
        tables.pairs.remove(&pair_key);
        if tables.known.len() >= self.settings.max_entries {
            let horizon = now - self.settings.known_address_for;
            tables.known.retain(|_, since| *since > horizon);
        }
        if tables.known.len() < self.settings.max_entries {
            tables.known.insert(pair_key, now);
        }
    }

    /// Forgets every counter of `account` (support staff unlocking it).
    pub fn clear_account(&self, account: &str) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.accounts.remove(account);
            tables.pairs.retain(|(name, _), _| name != account);
        }
    }

    fn remaining(&self, counter: &Counter, limit: u32, now: DateTime<Utc>) -> Duration {
        if now - counter.last_failure >= self.settings.window || counter.failures < limit {
            return Duration::zero();
        }
        let excess = (counter.failures - limit).min(20);
        let delay = (self.settings.base_delay * 2i32.pow(excess)).min(self.settings.max_delay);
        (counter.last_failure + delay - now).max(Duration::zero())
    }
}

fn bump<K: Eq + Hash>(
    table: &mut HashMap<K, Counter>,
    key: K,
    now: DateTime<Utc>,
    window: Duration,
    max_entries: usize,
) {
    if table.len() >= max_entries && !table.contains_key(&key) {
        table.retain(|_, counter| now - counter.last_failure < window);
        if table.len() >= max_entries {
            return;
        }
    }
    let counter = table.entry(key).or_insert(Counter {
        failures: 0,
        last_failure: now,
    });
    if now - counter.last_failure >= window {
        counter.failures = 0;
    }
    counter.failures = counter.failures.saturating_add(1);
    counter.last_failure = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn start() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn pair_limit_blocks_only_that_address() {
        let throttle = LoginThrottle::new(ThrottleSettings::default());
        let now = start();
        for _ in 0..5 {
            assert_eq!(throttle.check("victim", address(1), now), None);
            throttle.record_failure("victim", address(1), now);
        }
        assert!(throttle.check("victim", address(1), now).is_some());
        assert_eq!(throttle.check("victim", address(2), now), None);
        assert_eq!(throttle.check("other", address(1), now), None);
    }

    #[test]
    fn delay_is_progressive_and_expires() {
        let throttle = LoginThrottle::new(ThrottleSettings::default());
        let now = start();
        for _ in 0..5 {
            throttle.record_failure("a", address(1), now);
        }
        assert_eq!(throttle.check("a", address(1), now), Some(1));
        throttle.record_failure("a", address(1), now);
        assert_eq!(throttle.check("a", address(1), now), Some(2));
        assert_eq!(
            throttle.check("a", address(1), now + Duration::seconds(3)),
            None
        );
    }

    #[test]
    fn owner_from_known_address_is_not_locked_out() {
        let throttle = LoginThrottle::new(ThrottleSettings::default());
        let now = start();
        throttle.record_success("victim", address(1), now);
        for attacker in 0..60u8 {
            throttle.record_failure("victim", address(100 + attacker % 10), now);
        }
        assert_eq!(throttle.check("victim", address(1), now), None);
        assert!(throttle.check("victim", address(3), now).is_some());
    }

    #[test]
    fn success_clears_the_pair() {
        let throttle = LoginThrottle::new(ThrottleSettings::default());
        let now = start();
        for _ in 0..4 {
            throttle.record_failure("a", address(1), now);
        }
        throttle.record_success("a", address(1), now);
        throttle.record_failure("a", address(1), now);
        assert_eq!(throttle.check("a", address(1), now), None);
    }
}
