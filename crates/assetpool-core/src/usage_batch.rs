//! What every storage backend does with a [`UsageBatch`] before writing it:
//! sums per row it will write, each kind in one fixed order, and how long
//! each kind of usage row is kept. Backends only add their SQL.

use crate::store::{AddressSeen, UsageBatch, UsageResolution};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// Networks not used by a key for this long are forgotten (beyond the 30
/// days of the `new_network` rule).
pub const NETWORKS_KEPT: Duration = Duration::days(90);

impl UsageResolution {
    /// How long buckets of this resolution are kept.
    pub fn retention(self) -> Duration {
        match self {
            UsageResolution::Minute => Duration::hours(48),
            UsageResolution::Hour => Duration::days(90),
            UsageResolution::Day => Duration::days(730),
        }
    }
}

fn millis_of(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// Every resolution a count is added to.
pub const RESOLUTIONS: [UsageResolution; 3] = [
    UsageResolution::Minute,
    UsageResolution::Hour,
    UsageResolution::Day,
];

/// Counts per (key, resolution, bucket start, outcome).
pub type Buckets<'a> = BTreeMap<(&'a str, &'static str, i64, &'a str), i64>;

/// A batch summed per row it writes, each kind in a fixed order (by key
/// first), so concurrent writers take their locks in the same order.
pub struct PreparedBatch<'a> {
    /// (key, resolution, bucket start, outcome) -> count.
    pub buckets: Buckets<'a>,
    /// (key, day, address).
    pub addresses: Vec<(&'a str, i64, &'a str)>,
    /// (key, network) -> the latest address seen in it.
    pub networks: BTreeMap<(&'a str, &'a str), &'a AddressSeen>,
    /// key -> (latest use, its address).
    pub last_uses: BTreeMap<&'a str, (DateTime<Utc>, Option<&'a str>)>,
}

/// Sums a batch per row it writes, in the order rows are written.
pub fn prepare(batch: &UsageBatch) -> PreparedBatch<'_> {
    let mut buckets = BTreeMap::new();
    for delta in &batch.counts {
        let added = i64::try_from(delta.count).unwrap_or(i64::MAX);
        for resolution in RESOLUTIONS {
            let start = millis_of(resolution.bucket_start(delta.minute));
            let entry = buckets
                .entry((
                    delta.key_id.as_str(),
                    resolution.as_str(),
                    start,
                    delta.outcome.as_str(),
                ))
                .or_insert(0_i64);
            *entry = entry.saturating_add(added);
        }
    }
    let mut addresses: Vec<(&str, i64, &str)> = batch
        .addresses
        .iter()
        .map(|seen| {
            (
                seen.key_id.as_str(),
                millis_of(UsageResolution::Day.bucket_start(seen.at)),
                seen.address.as_str(),
            )
        })
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut networks: BTreeMap<(&str, &str), &AddressSeen> = BTreeMap::new();
    for seen in &batch.addresses {
        networks
            .entry((seen.key_id.as_str(), seen.network.as_str()))
            .and_modify(|latest| {
                if seen.at > latest.at {
                    *latest = seen;
                }
            })
            .or_insert(seen);
    }
    let mut last_uses: BTreeMap<&str, (DateTime<Utc>, Option<&str>)> = BTreeMap::new();
    for used in &batch.last_uses {
        let candidate = (used.at, used.address.as_deref());
        last_uses
            .entry(used.key_id.as_str())
            .and_modify(|latest| {
                if used.at > latest.0 {
                    *latest = candidate;
                }
            })
            .or_insert(candidate);
    }
    PreparedBatch {
        buckets,
        addresses,
        networks,
        last_uses,
    }
}
