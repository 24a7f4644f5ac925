//! Rate limits and quotas decided for every server together: the verify path
//! asks a [`SharedLimits`] (the server's Redis limits store) before its
//! per-server state, and falls back to the per-server state for the request
//! when the shared store cannot answer.

use crate::ids::KeyId;
use crate::limits::{LimitExceeded, Quota, RateLimit};
use chrono::{DateTime, Utc};

/// One request's limits, as asked of a [`SharedLimits`].
#[derive(Debug, Clone, Copy)]
pub struct LimitRequest<'a> {
    /// The key whose request it is.
    pub key_id: &'a KeyId,
    /// The key's rate limit, if any.
    pub rate: Option<RateLimit>,
    /// The key's quota, if any.
    pub quota: Option<Quota>,
    /// Start of the quota's current period (by this server's clock).
    pub period_start: DateTime<Utc>,
    /// Start of the next period: the shared count expires then.
    pub period_end: DateTime<Utc>,
    /// What this server knows the period's count to be at least (the stored
    /// total it learned plus what it counted since): a shared count that was
    /// lost (a store restarted) starts again from there.
    pub quota_floor: u64,
}

/// What a [`SharedLimits`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedDecision {
    /// Admitted: counted against the rate and the quota.
    Admitted,
    /// Over the rate: `retry_after_micros` until the next request may pass.
    RateExceeded {
        /// Microseconds until the rate admits a request again.
        retry_after_micros: u64,
    },
    /// The quota of the period is used up.
    QuotaExceeded,
}

/// The health of a [`SharedLimits`], for metrics and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedLimitsStatus {
    /// Whether the store answered its last call.
    pub up: bool,
    /// Requests whose limits were decided by this server alone because the
    /// store could not answer.
    pub fallbacks: u64,
}

/// A store that decides rate limits and quotas for every server at once.
#[async_trait::async_trait]
pub trait SharedLimits: Send + Sync + std::fmt::Debug {
    /// Takes one request from the key's rate and quota, atomically; `None`
    /// when the store cannot answer now (the caller decides alone).
    async fn take(&self, request: LimitRequest<'_>) -> Option<SharedDecision>;

    /// Whether the store answers, and how often it did not.
    fn status(&self) -> SharedLimitsStatus;
}

impl SharedDecision {
    /// The refusal a decision means for `request` at `now` (`None`: admitted),
    /// with the same `Retry-After` and `RateLimit-*` values as the
    /// per-server limits.
    pub fn refusal(self, request: &LimitRequest<'_>, now: DateTime<Utc>) -> Option<LimitExceeded> {
        match self {
            SharedDecision::Admitted => None,
            SharedDecision::RateExceeded { retry_after_micros } => {
                let seconds = retry_after_micros.div_ceil(1_000_000).max(1);
                Some(LimitExceeded {
                    retry_after_seconds: seconds,
                    limit: request.rate.map_or(0, |rate| u64::from(rate.burst)),
                    remaining: 0,
                    reset_seconds: seconds,
                })
            }
            SharedDecision::QuotaExceeded => {
                let reset = (request.period_end - now).num_seconds().max(1);
                let reset = u64::try_from(reset).unwrap_or(1);
                Some(LimitExceeded {
                    retry_after_seconds: reset,
                    limit: request.quota.map_or(0, |quota| quota.requests),
                    remaining: 0,
                    reset_seconds: reset,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{QuotaPeriod, RateUnit};
    use chrono::TimeZone;

    #[test]
    fn refusals_carry_the_per_server_header_values() {
        let key_id: KeyId = "key".into();
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 23, 0, 0).unwrap();
        let request = LimitRequest {
            key_id: &key_id,
            rate: Some(RateLimit {
                requests: 1,
                unit: RateUnit::Hour,
                burst: 5,
            }),
            quota: Some(Quota {
                requests: 7,
                period: QuotaPeriod::Day,
            }),
            period_start: QuotaPeriod::Day.start(now),
            period_end: QuotaPeriod::Day.next_start(now),
            quota_floor: 0,
        };
        assert_eq!(SharedDecision::Admitted.refusal(&request, now), None);
        let rate = SharedDecision::RateExceeded {
            retry_after_micros: 1_000_001,
        }
        .refusal(&request, now)
        .unwrap();
        assert_eq!((rate.retry_after_seconds, rate.limit), (2, 5));
        let short = SharedDecision::RateExceeded {
            retry_after_micros: 10,
        }
        .refusal(&request, now)
        .unwrap();
        assert_eq!(short.retry_after_seconds, 1);
        let quota = SharedDecision::QuotaExceeded
            .refusal(&request, now)
            .unwrap();
        assert_eq!((quota.retry_after_seconds, quota.limit), (3600, 7));
    }
}
