//! Usage flushing and the alert rules evaluated off the request path: on
//! each usage flush (new networks, failed logins per key, rate spikes) and at
//! housekeeping (keys nearing expiry).

use super::AuthService;
use crate::alerts::{AlertRule, Trigger};
use crate::ids::KeyId;
use crate::store::{HourTotal, NetworkSeen, UsageResolution, UsageWritten};
use crate::{ApiKeyStatus, ServiceError};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Hours of history a rate baseline needs (hours with traffic in the last 7 days).
pub const MIN_BASELINE_HOURS: usize = 3;
const BASELINE_DAYS: i64 = 7;
const MAX_BASELINES: usize = 100_000;

/// A key's hourly baseline: the hour it was computed for, and the median.
type Baseline = (DateTime<Utc>, Option<u64>);

/// What the rules remember between runs.
#[derive(Debug, Default)]
pub(super) struct MonitorState {
    /// Key → (hour, hourly median of the 7 days before it).
    baselines: Mutex<HashMap<KeyId, Baseline>>,
    /// (key, stage) expiry warnings already raised by this server.
    expiry_warned: Mutex<HashSet<(KeyId, String)>>,
}

fn is_request(outcome: &str) -> bool {
    outcome != "login" && outcome != "login_failed"
}

fn median(mut values: Vec<u64>) -> Option<u64> {
    if values.len() < MIN_BASELINE_HOURS {
        return None;
    }
    values.sort_unstable();
    Some(values[values.len() / 2])
}

impl AuthService {
    /// Writes the usage counted since the last flush, then evaluates the
    /// rules that look at it. Counts are put back when the write fails.
    pub(super) async fn flush_key_usage(&self) -> Result<(), ServiceError> {
        let now = self.clock.now();
        // Flushes run on interval boundaries: what was counted belongs to the
        // interval that just ended.
        let minute = UsageResolution::Minute.bucket_start(now - Duration::seconds(1));
        let batch = self.usage.drain(minute);
        if batch.counts.is_empty() && batch.addresses.is_empty() && batch.last_uses.is_empty() {
            return Ok(());
        }
        let written = match self.store.add_key_usage(&batch).await {
            Ok(written) => {
                self.usage.settle(&batch);
                written
            }
            Err(error) => {
                self.usage.restore(&batch);
                return Err(error.into());
            }
        };
        self.evaluate_usage_rules(&written, now).await;
        Ok(())
    }

    async fn evaluate_usage_rules(&self, written: &UsageWritten, now: DateTime<Utc>) {
        for seen in &written.networks {
            self.check_new_network(seen);
        }
        let settings = self.alerts.settings();
        let mut requests: BTreeMap<(&KeyId, DateTime<Utc>), u64> = BTreeMap::new();
        for HourTotal {
            key_id,
            hour,
            outcome,
            total,
        } in &written.hour_totals
        {
            if outcome == "login_failed" && *total >= settings.failed_logins_per_key {
                let evidence = serde_json::json!({
                    "failedLoginsThisHour": total,
                    "threshold": settings.failed_logins_per_key,
                    "hour": hour,
                });
                self.alerts.trigger(Trigger::for_key(
                    AlertRule::FailedLogins,
                    key_id,
                    evidence,
                    now,
                ));
            }
            if is_request(outcome) {
                *requests.entry((key_id, *hour)).or_default() += total;
            }
        }
        if !self.alerts.enabled(AlertRule::RateSpike) {
            return;
        }
        for ((key_id, hour), count) in requests {
            if count < settings.rate_spike_min_requests {
                continue;
            }
            let Some(baseline) = self.hourly_baseline(key_id, hour).await else {
                continue;
            };
            if count > baseline.saturating_mul(settings.rate_spike_factor) {
                let evidence = serde_json::json!({
                    "requestsThisHour": count,
                    "hourlyMedian": baseline,
                    "factor": settings.rate_spike_factor,
                    "hour": hour,
                });
                self.alerts.trigger(Trigger::for_key(
                    AlertRule::RateSpike,
                    key_id,
                    evidence,
                    now,
                ));
            }
        }
    }

    fn check_new_network(&self, seen: &NetworkSeen) {
        let settings = self.alerts.settings();
        let at = seen.seen.at;
        let unused_long = seen
            .previously_seen
            .is_none_or(|previous| at - previous >= settings.new_network_after);
        // A key's first network is not news: only a key with a history can
        // show up somewhere new.
        let has_history = seen.other_networks > 0 || seen.previously_seen.is_some();
        if unused_long && has_history {
            let evidence = serde_json::json!({
                "clientAddress": seen.seen.address,
                "network": seen.seen.network,
                "previouslySeenAt": seen.previously_seen,
                "otherNetworks": seen.other_networks,
            });
            let mut trigger =
                Trigger::for_key(AlertRule::NewNetwork, &seen.seen.key_id, evidence, at);
            trigger.stage = Some(seen.seen.network.clone());
            self.alerts.trigger(trigger);
        }
    }

    /// The median of a key's hourly request counts over the 7 days before
    /// `hour`, counting hours with traffic; `None` without enough history.
    async fn hourly_baseline(&self, key_id: &KeyId, hour: DateTime<Utc>) -> Option<u64> {
        if let Ok(baselines) = self.monitor.baselines.lock() {
            if let Some((cached_hour, baseline)) = baselines.get(key_id) {
                if *cached_hour == hour {
                    return *baseline;
                }
            }
        }
        let since = hour - Duration::days(BASELINE_DAYS);
        let usage = match self
            .store
            .key_usage(key_id, UsageResolution::Hour, since)
            .await
        {
            Ok(usage) => usage,
            Err(error) => {
                tracing::warn!(%error, "could not read a key's usage history");
                return None;
            }
        };
        let mut per_hour: BTreeMap<DateTime<Utc>, u64> = BTreeMap::new();
        for bucket in usage.buckets {
            if bucket.start < hour && is_request(&bucket.outcome) {
                *per_hour.entry(bucket.start).or_default() += bucket.count;
            }
        }
        let baseline = median(per_hour.into_values().filter(|count| *count > 0).collect());
        if let Ok(mut baselines) = self.monitor.baselines.lock() {
            if baselines.len() >= MAX_BASELINES {
                baselines.clear();
            }
            baselines.insert(key_id.clone(), (hour, baseline));
        }
        baseline
    }

    /// Raises `key_expiring` for usable keys (not rotating ones: their end is
    /// intended) within a warning period of their expiry, once per stage.
    pub(super) async fn check_expiring_keys(&self, now: DateTime<Utc>) -> Result<(), ServiceError> {
        if !self.alerts.enabled(AlertRule::KeyExpiring) {
            return Ok(());
        }
        let warnings = &self.alerts.settings().expiry_warnings;
        let Some(longest) = warnings.iter().max() else {
            return Ok(());
        };
        for key in self.store.api_keys_expiring(now, now + *longest).await? {
            let Some(expires_at) = key.expires_at else {
                continue;
            };
            if key.status(now) != ApiKeyStatus::Active {
                continue;
            }
            let remaining = expires_at - now;
            let Some(warning) = warnings
                .iter()
                .filter(|warning| remaining <= **warning)
                .min()
            else {
                continue;
            };
            let stage = format!("{}d", warning.num_days());
            let first_time = self
                .monitor
                .expiry_warned
                .lock()
                .is_ok_and(|mut warned| warned.insert((key.id.clone(), stage.clone())));
            if !first_time {
                continue;
            }
            let evidence = serde_json::json!({
                "expiresAt": expires_at,
                "warning": stage,
                "keyPrefix": key.prefix,
                "name": key.name,
            });
            let mut trigger = Trigger::for_key(AlertRule::KeyExpiring, &key.id, evidence, now);
            trigger.stage = Some(stage);
            // One episode per stage, however long the stage lasts.
            trigger.episode_since = Some(expires_at - *warning - Duration::days(1));
            self.alerts.trigger(trigger);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_need_history() {
        assert_eq!(median(vec![5, 1]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![4, 1, 3, 10]), Some(4));
    }
}
