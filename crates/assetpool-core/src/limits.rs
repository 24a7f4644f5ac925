//! Per-key request limits: a rate with a burst (checked in memory on every
//! request, GCRA through `governor`) and a quota per calendar period (counted
//! in memory, summed across servers through storage).
//!
//! Written on the command line as `50/s`, `3000/min`, `100/h` (rates) and
//! `100000/day`, `5000/hour`, `1000000/month` (quotas).

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// The unit of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

impl RateUnit {
    /// Length of the unit in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            RateUnit::Second => "s",
            RateUnit::Minute => "min",
            RateUnit::Hour => "h",
        }
    }

    fn from_seconds(seconds: i64) -> Option<Self> {
        match seconds {
            1 => Some(RateUnit::Second),
            60 => Some(RateUnit::Minute),
            3600 => Some(RateUnit::Hour),
            _ => None,
        }
    }
}

/// A sustained rate with a burst: `requests` per `unit`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per unit.
    pub requests: u32,
    /// The unit.
    pub unit: RateUnit,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

impl RateLimit {
    /// The period in seconds the rate is stored with.
    pub fn unit_seconds(&self) -> i64 {
        i64::try_from(self.unit.seconds()).unwrap_or(1)
    }

    /// Rebuilds a rate from its stored columns.
    pub fn from_parts(requests: i64, unit_seconds: i64, burst: i64) -> Option<Self> {
        Some(RateLimit {
            requests: u32::try_from(requests).ok().filter(|value| *value > 0)?,
            unit: RateUnit::from_seconds(unit_seconds)?,
            burst: u32::try_from(burst).ok().filter(|value| *value > 0)?,
        })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.requests, self.unit.suffix())
    }
}

/// The calendar period of a quota (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// A clock hour.
    Hour,
    /// A calendar day.
    Day,
    /// A calendar month.
    Month,
}

impl QuotaPeriod {
    /// The name stored and shown (`hour`, `day`, `month`).
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Hour => "hour",
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "h" | "hour" => Some(QuotaPeriod::Hour),
            "d" | "day" => Some(QuotaPeriod::Day),
            "month" | "mo" => Some(QuotaPeriod::Month),
            _ => None,
        }
    }

    /// Start of the period containing `now`.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = now
            .with_nanosecond(0)
            .and_then(|time| time.with_second(0))
            .and_then(|time| time.with_minute(0))
            .unwrap_or(now);
        match self {
            QuotaPeriod::Hour => day,
            QuotaPeriod::Day => day.with_hour(0).unwrap_or(day),
            QuotaPeriod::Month => Utc
                .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                .single()
                .unwrap_or(day),
        }
    }

    /// Start of the period after the one containing `now`.
    pub fn next_start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start(now);
        match self {
            QuotaPeriod::Hour => start + Duration::hours(1),
            QuotaPeriod::Day => start + Duration::days(1),
            QuotaPeriod::Month => {
                let (year, month) = if now.month() == 12 {
                    (now.year() + 1, 1)
                } else {
                    (now.year(), now.month() + 1)
                };
                Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
                    .single()
                    .unwrap_or(start + Duration::days(31))
            }
        }
    }
}

/// At most `requests` per calendar `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per period.
    pub requests: u64,
    /// The period.
    pub period: QuotaPeriod,
}

impl fmt::Display for Quota {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.requests, self.period.as_str())
    }
}

/// The limits of one API key (none by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Sustained rate and burst.
    pub rate: Option<RateLimit>,
    /// Quota per calendar period.
    pub quota: Option<Quota>,
}

/// [`KeyLimits`] as the nullable columns storage keeps them in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitColumns {
    /// Requests per rate unit.
    pub rate_requests: Option<i64>,
    /// Rate unit in seconds.
    pub rate_unit_seconds: Option<i64>,
    /// Burst.
    pub rate_burst: Option<i64>,
    /// Requests per quota period.
    pub quota_requests: Option<i64>,
    /// Quota period name.
    pub quota_period: Option<&'static str>,
}

impl KeyLimits {
    /// The stored form.
    pub fn to_columns(&self) -> LimitColumns {
        LimitColumns {
            rate_requests: self.rate.map(|rate| i64::from(rate.requests)),
            rate_unit_seconds: self.rate.map(|rate| rate.unit_seconds()),
            rate_burst: self.rate.map(|rate| i64::from(rate.burst)),
            quota_requests: self
                .quota
                .map(|quota| i64::try_from(quota.requests).unwrap_or(i64::MAX)),
            quota_period: self.quota.map(|quota| quota.period.as_str()),
        }
    }

    /// Rebuilds limits from stored columns (incomplete or invalid ones mean "none").
    pub fn from_columns(
        rate_requests: Option<i64>,
        rate_unit_seconds: Option<i64>,
        rate_burst: Option<i64>,
        quota_requests: Option<i64>,
        quota_period: Option<&str>,
    ) -> Self {
        let rate = match (rate_requests, rate_unit_seconds, rate_burst) {
            (Some(requests), Some(unit), Some(burst)) => {
                RateLimit::from_parts(requests, unit, burst)
            }
            _ => None,
        };
        let quota = match (quota_requests, quota_period) {
            (Some(requests), Some(period)) => u64::try_from(requests)
                .ok()
                .filter(|requests| *requests > 0)
                .zip(QuotaPeriod::parse(period))
                .map(|(requests, period)| Quota { requests, period }),
            _ => None,
        };
        KeyLimits { rate, quota }
    }
}

/// A limit written on the command line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LimitParseError(String);

fn split_limit(text: &str, example: &str) -> Result<(u64, String), LimitParseError> {
    let (count, unit) = text.trim().split_once('/').ok_or_else(|| {
        LimitParseError(format!(
            "a limit is written COUNT/UNIT, for example {example}"
        ))
    })?;
    let count: u64 = count
        .trim()
        .parse()
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| LimitParseError("the count of a limit must be a positive integer".into()))?;
    Ok((count, unit.trim().to_ascii_lowercase()))
}

/// A rate as typed: `50/s`, `3000/min`, `100/h` (the burst is set separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    /// Requests per unit.
    pub requests: u32,
    /// The unit.
    pub unit: RateUnit,
}

impl FromStr for RateSpec {
    type Err = LimitParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, unit) = split_limit(text, "50/s")?;
        let unit = match unit.as_str() {
            "s" | "sec" | "second" => RateUnit::Second,
            "m" | "min" | "minute" => RateUnit::Minute,
            "h" | "hour" => RateUnit::Hour,
            _ => {
                return Err(LimitParseError(
                    "the unit of a rate is s, min or h (for example 50/s)".into(),
                ))
            }
        };
        let requests =
            u32::try_from(count).map_err(|_| LimitParseError("the rate is too large".into()))?;
        Ok(RateSpec { requests, unit })
    }
}

impl RateSpec {
    /// The rate with `burst` (default: the rate's count, at least 1).
    pub fn with_burst(self, burst: Option<u32>) -> RateLimit {
        RateLimit {
            requests: self.requests,
            unit: self.unit,
            burst: burst.unwrap_or(self.requests).max(1),
        }
    }
}

impl FromStr for Quota {
    type Err = LimitParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (requests, period) = split_limit(text, "100000/day")?;
        let period = QuotaPeriod::parse(&period)
            .ok_or_else(|| LimitParseError("the period of a quota is hour, day or month".into()))?;
        Ok(Quota { requests, period })
    }
}

type DirectLimiter =
    governor::RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Why a request over a limit was refused, with what the `RateLimit-*`
/// headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded {
    /// Seconds until a request may succeed (`Retry-After`).
    pub retry_after_seconds: u64,
    /// The limit that was hit, in requests (`RateLimit-Limit`).
    pub limit: u64,
    /// Requests left (`RateLimit-Remaining`): 0.
    pub remaining: u64,
    /// Seconds until the limit resets (`RateLimit-Reset`).
    pub reset_seconds: u64,
}

/// The in-memory GCRA state of one key's rate.
pub struct RateGate {
    limit: RateLimit,
    limiter: DirectLimiter,
}

impl fmt::Debug for RateGate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RateGate")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl RateGate {
    /// A full bucket for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        let requests = NonZeroU32::new(limit.requests.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = std::time::Duration::from_secs(limit.unit.seconds()) / requests.get();
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(requests))
            .allow_burst(burst);
        RateGate {
            limit,
            limiter: governor::RateLimiter::direct(quota)
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    /// Takes one request from the bucket, or says when to come back.
    pub fn check(&self) -> Result<(), LimitExceeded> {
        match self.limiter.check() {
            Ok(_) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(LimitExceeded {
                    retry_after_seconds: seconds.max(1),
                    limit: u64::from(self.limit.burst),
                    remaining: 0,
                    reset_seconds: seconds.max(1),
                })
            }
        }
    }

    /// The limit this gate enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_quotas_parse_and_print() {
        let rate: RateSpec = "50/s".parse().unwrap();
        assert_eq!(rate.with_burst(Some(100)).to_string(), "50/s");
        assert_eq!(rate.with_burst(None).burst, 50);
        let rate: RateSpec = "3000/min".parse().unwrap();
        assert_eq!(rate.unit, RateUnit::Minute);
        let quota: Quota = "100000/day".parse().unwrap();
        assert_eq!(quota.to_string(), "100000/day");
        for bad in ["", "50", "0/s", "-1/s", "50/week", "x/s", "50/s/s"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
        assert!("10/year".parse::<Quota>().is_err());
    }

    #[test]
    fn periods_start_on_calendar_boundaries() {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 13, 45, 12).unwrap();
        assert_eq!(
            QuotaPeriod::Hour.start(now),
            Utc.with_ymd_and_hms(2026, 12, 31, 13, 0, 0).unwrap()
        );
        assert_eq!(
            QuotaPeriod::Day.next_start(now),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            QuotaPeriod::Month.next_start(now),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_gate_allows_the_burst_then_refuses() {
        let gate = RateGate::new("1/h".parse::<RateSpec>().unwrap().with_burst(Some(3)));
        for _ in 0..3 {
            assert!(gate.check().is_ok());
        }
        let refused = gate.check().unwrap_err();
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after_seconds > 1000);
    }
}
