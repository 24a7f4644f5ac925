//! Quota counting: each server counts the requests of keys with a quota in
//! memory and adds them to the shared counters in storage with the usage
//! flush, learning in return what every server counted. A server refuses a
//! request once the shared total it last learned plus its own unflushed count
//! reaches the quota, so several servers overshoot by at most what the others
//! admitted since their last flush. A server learns the stored total when it
//! reads a key with a quota from storage ([`QuotaCounters::learn`]), before
//! that key's first request here: a restarted or new server does not start
//! from 0.
//!
//! With a shared limits store ([`crate::shared_limits`]) the store decides
//! and these counters only count ([`QuotaCounters::count`]) for storage; they
//! decide again, as above, for requests the store cannot answer.

use crate::ids::KeyId;
use crate::limits::{LimitExceeded, Quota, QuotaPeriod};
use crate::store::QuotaDelta;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
struct Counter {
    period: QuotaPeriod,
    period_start: DateTime<Utc>,
    /// Total of every server, as of this server's last flush.
    shared: u64,
    /// Counted here since the last flush.
    unflushed: u64,
}

/// The quota counters of one server.
#[derive(Debug, Default)]
pub(super) struct QuotaCounters {
    counters: Mutex<HashMap<KeyId, Counter>>,
    /// Unflushed counts of periods that ended before they were flushed.
    leftovers: Mutex<Vec<QuotaDelta>>,
}

impl QuotaCounters {
    /// Counts one request of `key_id`, or refuses it when the quota is used up.
    pub(super) fn take(
        &self,
        key_id: &KeyId,
        quota: &Quota,
        now: DateTime<Utc>,
    ) -> Result<(), LimitExceeded> {
        self.count_or_refuse(key_id, quota, now, true)
    }

    /// Counts one request of `key_id` that the shared limits store admitted
    /// (so that storage still learns it with the usage flush), never refusing.
    pub(super) fn count(&self, key_id: &KeyId, quota: &Quota, now: DateTime<Utc>) {
        let _ = self.count_or_refuse(key_id, quota, now, false);
    }

    /// What this server knows `key_id`'s count of the period containing
    /// `now` to be at least: the shared total it last learned plus what it
    /// counted since.
    pub(super) fn known_total(&self, key_id: &KeyId, quota: &Quota, now: DateTime<Utc>) -> u64 {
        let period_start = quota.period.start(now);
        let Ok(counters) = self.counters.lock() else {
            return 0;
        };
        match counters.get(key_id) {
            Some(counter) if counter.period_start == period_start => {
                counter.shared.saturating_add(counter.unflushed)
            }
            _ => 0,
        }
    }

    fn count_or_refuse(
        &self,
        key_id: &KeyId,
        quota: &Quota,
        now: DateTime<Utc>,
        enforce: bool,
    ) -> Result<(), LimitExceeded> {
        let period_start = quota.period.start(now);
        let Ok(mut counters) = self.counters.lock() else {
            return Ok(());
        };
        let counter = counters.entry(key_id.clone()).or_insert(Counter {
            period: quota.period,
            period_start,
            shared: 0,
            unflushed: 0,
        });
        if counter.period_start != period_start {
            if counter.unflushed > 0 {
                if let Ok(mut leftovers) = self.leftovers.lock() {
                    leftovers.push(QuotaDelta {
                        key_id: key_id.clone(),
                        period_start: counter.period_start,
                        requests: counter.unflushed,
                    });
                }
            }
            *counter = Counter {
                period: quota.period,
                period_start,
                shared: 0,
                unflushed: 0,
            };
        }
        if enforce && counter.shared.saturating_add(counter.unflushed) >= quota.requests {
            let reset = (quota.period.next_start(now) - now).num_seconds().max(1);
            let reset = u64::try_from(reset).unwrap_or(1);
            return Err(LimitExceeded {
                retry_after_seconds: reset,
                limit: quota.requests,
                remaining: 0,
                reset_seconds: reset,
            });
        }
        counter.unflushed += 1;
        Ok(())
    }

    /// Records `total`, the stored count of `key_id`'s period starting at
    /// `period_start` (read before the key's first request here): the shared
    /// total only grows, and a counter of an earlier period is left alone
    /// (its next request starts the new period).
    pub(super) fn learn(
        &self,
        key_id: &KeyId,
        quota: &Quota,
        period_start: DateTime<Utc>,
        total: u64,
    ) {
        let Ok(mut counters) = self.counters.lock() else {
            return;
        };
        let counter = counters.entry(key_id.clone()).or_insert(Counter {
            period: quota.period,
            period_start,
            shared: 0,
            unflushed: 0,
        });
        if counter.period_start == period_start {
            counter.shared = counter.shared.max(total);
        }
    }

    /// Takes what must be written: every counter of the current period (a
    /// zero delta still brings back the other servers' counts) and leftovers.
    pub(super) fn drain(&self) -> Vec<QuotaDelta> {
        let mut deltas = match self.leftovers.lock() {
            Ok(mut leftovers) => std::mem::take(&mut *leftovers),
            Err(_) => Vec::new(),
        };
        if let Ok(mut counters) = self.counters.lock() {
            for (key_id, counter) in counters.iter_mut() {
                deltas.push(QuotaDelta {
                    key_id: key_id.clone(),
                    period_start: counter.period_start,
                    requests: counter.unflushed,
                });
                counter.unflushed = 0;
            }
        }
        // One order for every server, so concurrent flushes cannot deadlock.
        deltas.sort_by(|a, b| (&a.key_id, a.period_start).cmp(&(&b.key_id, b.period_start)));
        deltas
    }

    /// Records the totals storage returned for the drained deltas.
    pub(super) fn settle(&self, totals: &[(QuotaDelta, u64)]) {
        if let Ok(mut counters) = self.counters.lock() {
            for (delta, total) in totals {
                if let Some(counter) = counters.get_mut(&delta.key_id) {
                    if counter.period_start == delta.period_start {
                        counter.shared = counter.shared.max(*total);
                    }
                }
            }
        }
    }

    /// Puts drained deltas back after a failed write.
    pub(super) fn restore(&self, deltas: Vec<QuotaDelta>) {
        let mut stale = Vec::new();
        if let Ok(mut counters) = self.counters.lock() {
            for delta in deltas {
                match counters.get_mut(&delta.key_id) {
                    Some(counter) if counter.period_start == delta.period_start => {
                        counter.unflushed += delta.requests;
                    }
                    _ if delta.requests > 0 => stale.push(delta),
                    _ => {}
                }
            }
        }
        if let Ok(mut leftovers) = self.leftovers.lock() {
            leftovers.extend(stale);
        }
    }

    /// Forgets counters of periods that ended with nothing left to write.
    pub(super) fn forget_ended(&self, now: DateTime<Utc>) {
        if let Ok(mut counters) = self.counters.lock() {
            counters.retain(|_, counter| {
                counter.unflushed > 0 || counter.period.start(now) == counter.period_start
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn quota(requests: u64) -> Quota {
        Quota {
            requests,
            period: QuotaPeriod::Day,
        }
    }

    #[test]
    fn counts_up_to_the_quota_then_refuses_until_the_next_period() {
        let counters = QuotaCounters::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 23, 0, 0).unwrap();
        for _ in 0..3 {
            assert!(counters.take(&"key".into(), &quota(3), now).is_ok());
        }
        let refused = counters.take(&"key".into(), &quota(3), now).unwrap_err();
        assert_eq!(refused.retry_after_seconds, 3600);
        assert_eq!(refused.limit, 3);
        let tomorrow = now + chrono::Duration::hours(2);
        assert!(counters.take(&"key".into(), &quota(3), tomorrow).is_ok());
        let drained = counters.drain();
        let yesterday: u64 = drained
            .iter()
            .filter(|delta| delta.period_start < QuotaPeriod::Day.start(tomorrow))
            .map(|delta| delta.requests)
            .sum();
        assert_eq!(yesterday, 3);
    }

    #[test]
    fn other_servers_counts_arrive_with_the_flush() {
        let counters = QuotaCounters::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        assert!(counters.take(&"key".into(), &quota(10), now).is_ok());
        let drained = counters.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].requests, 1);
        // Another server counted 8 more.
        counters.settle(&[(drained[0].clone(), 9)]);
        assert!(counters.take(&"key".into(), &quota(10), now).is_ok());
        assert!(counters.take(&"key".into(), &quota(10), now).is_err());
    }

    #[test]
    fn a_learned_total_counts_before_the_first_flush() {
        let counters = QuotaCounters::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let today = QuotaPeriod::Day.start(now);
        counters.learn(&"key".into(), &quota(3), today, 2);
        assert!(counters.take(&"key".into(), &quota(3), now).is_ok());
        assert!(counters.take(&"key".into(), &quota(3), now).is_err());
        // A smaller or older total changes nothing.
        counters.learn(&"key".into(), &quota(3), today, 0);
        counters.learn(
            &"key".into(),
            &quota(3),
            today - chrono::Duration::days(1),
            9,
        );
        assert!(counters.take(&"key".into(), &quota(3), now).is_err());
    }

    #[test]
    fn counts_admitted_elsewhere_are_kept_without_refusing() {
        let counters = QuotaCounters::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let today = QuotaPeriod::Day.start(now);
        counters.learn(&"key".into(), &quota(2), today, 2);
        counters.count(&"key".into(), &quota(2), now);
        assert_eq!(counters.known_total(&"key".into(), &quota(2), now), 3);
        assert_eq!(counters.known_total(&"other".into(), &quota(2), now), 0);
        let drained = counters.drain();
        assert_eq!(drained[0].requests, 1);
    }

    #[test]
    fn a_failed_write_keeps_the_counts() {
        let counters = QuotaCounters::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        assert!(counters.take(&"key".into(), &quota(2), now).is_ok());
        let drained = counters.drain();
        counters.restore(drained);
        assert!(counters.take(&"key".into(), &quota(2), now).is_ok());
        assert!(counters.take(&"key".into(), &quota(2), now).is_err());
    }
}
