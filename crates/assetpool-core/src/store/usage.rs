//! Usage per key (minute, hour and day buckets, addresses, networks) and
//! quota counters: the records and [`UsageStore`].

use super::StoreResult;
use crate::ids::KeyId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Requests counted against a key's quota in one period, by one server
/// since its last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDelta {
    /// Key id.
    pub key_id: KeyId,
    /// Start of the quota period.
    pub period_start: DateTime<Utc>,
    /// Requests to add.
    pub requests: u64,
}

/// Resolution of a usage series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageResolution {
    /// Per minute (kept 48 hours).
    Minute,
    /// Per hour (kept 90 days).
    Hour,
    /// Per day (kept 2 years).
    Day,
}

impl UsageResolution {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageResolution::Minute => "minute",
            UsageResolution::Hour => "hour",
            UsageResolution::Day => "day",
        }
    }

    /// Parses a stored (or typed) name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minute" => Some(UsageResolution::Minute),
            "hour" => Some(UsageResolution::Hour),
            "day" => Some(UsageResolution::Day),
            _ => None,
        }
    }

    /// Length of one bucket in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            UsageResolution::Minute => 60_000,
            UsageResolution::Hour => 3_600_000,
            UsageResolution::Day => 86_400_000,
        }
    }

    /// Start of the bucket holding `at` (UTC, aligned on the epoch).
    pub fn bucket_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let millis = at.timestamp_millis();
        crate::clock::from_millis(millis - millis.rem_euclid(self.millis()))
    }
}

/// Requests (or login events) of one key in one minute, with one outcome,
/// counted by one server since its last flush.
///
/// Outcomes: `2xx`, `4xx:<error code>` (e.g. `4xx:token_expired`), `5xx`
/// for requests; `login` and `login_failed` for login events (a login is
/// also counted as a request with its HTTP outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// Key id.
    pub key_id: KeyId,
    /// Start of the minute.
    pub minute: DateTime<Utc>,
    /// Outcome name (see above).
    pub outcome: String,
    /// Count to add.
    pub count: u64,
}

/// A client address a key was used from (for distinct addresses per day and
/// the new-network alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSeen {
    /// Key id.
    pub key_id: KeyId,
    /// The client address as text (`203.0.113.7`, `2001:db8::1`).
    pub address: String,
    /// Its network as text: the /24 of an IPv4 address, the /48 of an IPv6
    /// one (`203.0.113.0/24`, `2001:db8::/48`).
    pub network: String,
    /// When (the latest use in the flush).
    pub at: DateTime<Utc>,
}

/// The latest use of a key in a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLastUse {
    /// Key id.
    pub key_id: KeyId,
    /// When.
    pub at: DateTime<Utc>,
    /// From which client address, when known.
    pub address: Option<String>,
}

/// One server's usage since its last flush, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// Counts, added to the minute, hour and day buckets of their minute.
    pub counts: Vec<UsageDelta>,
    /// Addresses seen.
    pub addresses: Vec<AddressSeen>,
    /// Latest uses (also updates the key's `last_used_at` when newer).
    pub last_uses: Vec<KeyLastUse>,
}

/// The hour total of one (key, outcome) after a flush added to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourTotal {
    /// Key id.
    pub key_id: KeyId,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Outcome name.
    pub outcome: String,
    /// Total of every server for that hour and outcome.
    pub total: u64,
}

/// A network a key was used from in a flush, with what storage knew of it before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSeen {
    /// The address as recorded.
    pub seen: AddressSeen,
    /// When the key was last used from this network before this flush (`None`: never).
    pub previously_seen: Option<DateTime<Utc>>,
    /// How many other networks the key had been used from before this flush.
    pub other_networks: u64,
}

/// What [`UsageStore::add_key_usage`] learned while writing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageWritten {
    /// New hour totals of every (key, hour, outcome) the batch added to.
    pub hour_totals: Vec<HourTotal>,
    /// Every distinct (key, network) of the batch.
    pub networks: Vec<NetworkSeen>,
}

/// One bucket of a usage series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Outcome name.
    pub outcome: String,
    /// Count (every server).
    pub count: u64,
}

/// A key's usage as support staff see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Non-empty buckets since the asked time, oldest first, then by outcome.
    pub buckets: Vec<UsageBucket>,
    /// Distinct client addresses per day (day start, count), oldest first,
    /// for the days since the asked time (start of its day).
    pub addresses_per_day: Vec<(DateTime<Utc>, u64)>,
    /// Latest recorded use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Client address of the latest recorded use.
    pub last_address: Option<String>,
}

/// Usage per key and quota counters, summed across servers.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds requests to the keys' quota counters (one transaction) and
    /// returns each counter's new total, summed over every server.
    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<Vec<(QuotaDelta, u64)>>;
    /// Deletes quota counters of periods that started before `before`.
    async fn prune_quota_usage(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// The stored total of key `key_id`'s quota counter for the period that
    /// starts at `period_start` (0 if none): what every server flushed.
    async fn quota_usage(&self, key_id: &KeyId, period_start: DateTime<Utc>) -> StoreResult<u64>;
    /// Writes one server's usage batch in one transaction: adds each count to
    /// its minute, hour and day buckets (and to the sums of every key's), records addresses (per day) and
    /// networks (latest use), and newer last uses. Returns the new hour totals
    /// of what it added to and what it knew of each network before.
    async fn add_key_usage(&self, batch: &UsageBatch) -> StoreResult<UsageWritten>;
    /// A key's usage buckets of `resolution` starting at or after `since`.
    async fn key_usage(
        &self,
        key_id: &KeyId,
        resolution: UsageResolution,
        since: DateTime<Utc>,
    ) -> StoreResult<KeyUsage>;
    /// Deletes minute buckets older than 48 h, hour buckets older than 90
    /// days, day buckets and per-day addresses older than 2 years (and the
    /// sums of [`UsageStore::usage_totals`] with their buckets), networks
    /// last seen more than 90 days before `now`. Returns rows deleted.
    async fn prune_key_usage(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Usage of every key summed per bucket and outcome: the buckets of
    /// `resolution` starting at or after `since`, oldest first, then by
    /// outcome (the console's overview).
    async fn usage_totals(
        &self,
        resolution: UsageResolution,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<UsageBucket>>;
}
