//! Usage charts drawn on the server as SVG (no script, no chart library):
//! requests and errors of a key over time, one polyline each, placed by
//! bucket time so that empty buckets read as zero.

use assetpool_wire::{UsageBucketResponse, UsageCounts};
use chrono::{DateTime, Utc};

/// The drawing area, in SVG user units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
/// Room on the left for the scale, and at the bottom for the times.
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 20.0;

/// A chart ready for the template: polyline points and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Points of all requests (`x,y x,y ...`).
    pub requests: String,
    /// Points of errors (4xx and 5xx).
    pub errors: String,
    /// The top of the scale.
    pub peak: u64,
    /// Start and end of the period, as text.
    pub from: String,
    pub to: String,
    /// Totals over the period.
    pub total_requests: u64,
    pub total_errors: u64,
    /// A sentence describing the chart (its accessible name).
    pub summary: String,
}

fn errors(counts: &UsageCounts) -> u64 {
    counts
        .client_errors
        .values()
        .sum::<u64>()
        .saturating_add(counts.server_errors)
}

/// The chart of `series` between `since` and `now`.
pub fn usage_chart(
    series: &[UsageBucketResponse],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Chart {
    let peak = series
        .iter()
        .map(|bucket| bucket.counts.requests)
        .max()
        .unwrap_or(0)
        .max(1);
    let span = (now - since).num_milliseconds().max(1) as f64;
    let place = |bucket: &UsageBucketResponse, value: u64| {
        let offset = (bucket.start - since).num_milliseconds().max(0) as f64;
        let x = LEFT + (WIDTH - LEFT) * (offset / span).min(1.0);
        let y = (HEIGHT - BOTTOM) * (1.0 - value as f64 / peak as f64);
        format!("{x:.1},{y:.1}")
    };
    let line = |value: &dyn Fn(&UsageCounts) -> u64| {
        series
            .iter()
            .map(|bucket| place(bucket, value(&bucket.counts)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let total_requests = series.iter().map(|bucket| bucket.counts.requests).sum();
    let total_errors = series.iter().map(|bucket| errors(&bucket.counts)).sum();
    let from = super::views::when(since);
    let to = super::views::when(now);
    Chart {
        requests: line(&|counts| counts.requests),
        errors: line(&errors),
        peak,
        summary: format!(
            "{total_requests} requests, {total_errors} errors, from {from} to {to}; \
             at most {peak} in one interval"
        ),
        from,
        to,
        total_requests,
        total_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start: DateTime<Utc>, requests: u64, server_errors: u64) -> UsageBucketResponse {
        UsageBucketResponse {
            start,
            counts: UsageCounts {
                requests,
                server_errors,
                ..UsageCounts::default()
            },
        }
    }

    #[test]
    fn buckets_are_placed_by_time_and_scaled_to_the_peak() {
        let since = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let now = since + chrono::Duration::hours(1);
        let series = [
            bucket(since, 10, 0),
            bucket(since + chrono::Duration::minutes(30), 5, 5),
        ];
        let chart = usage_chart(&series, since, now);
        assert_eq!(chart.peak, 10);
        assert_eq!(chart.requests, "40.0,0.0 320.0,70.0");
        assert_eq!(chart.errors, "40.0,140.0 320.0,70.0");
        assert_eq!((chart.total_requests, chart.total_errors), (15, 5));
        let empty = usage_chart(&[], since, now);
        assert_eq!((empty.requests.as_str(), empty.peak), ("", 1));
    }
}
