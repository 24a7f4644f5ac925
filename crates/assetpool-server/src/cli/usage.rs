//! `assetpool keys usage ID`: a key's requests, logins and addresses over a
//! period, with a sparkline of requests per bucket.

use super::backend::Backend;
use super::output::{print_json, say, time};
use assetpool_core::ids::KeyId;
use assetpool_core::period::Period;
use assetpool_core::store::UsageResolution;
use assetpool_wire::{KeyUsageResponse, UsageCounts};

/// Most characters of the sparkline; more buckets are summed in groups.
const SPARK_WIDTH: usize = 72;
/// Sparkline levels, lowest first (a zero is a space).
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Bucket size of `keys usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bucket {
    /// Minutes (kept 48 hours).
    Minute,
    /// Hours (kept 90 days).
    Hour,
    /// Days (kept 2 years).
    Day,
}

impl From<Bucket> for UsageResolution {
    fn from(bucket: Bucket) -> Self {
        match bucket {
            Bucket::Minute => UsageResolution::Minute,
            Bucket::Hour => UsageResolution::Hour,
            Bucket::Day => UsageResolution::Day,
        }
    }
}

/// Options of `keys usage`.
#[derive(Debug, Clone, clap::Args)]
pub struct UsageArgs {
    /// Key id.
    id: KeyId,
    /// How far back to look: a number and an optional unit s, m, h, d or w
    /// (e.g. 30m, 24h, 7d; a bare number is seconds).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = Period::parse)]
    since: Period,
    /// Bucket size (minute buckets are kept 48 h, hour buckets 90 days, day buckets 2 years).
    #[arg(long, value_enum, default_value_t = Bucket::Hour)]
    bucket: Bucket,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `keys usage`.
pub async fn run(backend: &Backend, args: UsageArgs) -> anyhow::Result<()> {
    let usage = backend
        .key_usage(&args.id, args.bucket.into(), args.since)
        .await?;
    if args.json {
        return print_json(&usage);
    }
    print_usage(&usage, args.since);
    Ok(())
}

/// The sparkline of `values` and how many buckets each character sums
/// (adjacent buckets are summed so that at most `width` characters remain).
pub fn sparkline(values: &[u64], width: usize) -> (String, usize) {
    let group = values.len().div_ceil(width.max(1)).max(1);
    let sums: Vec<u64> = values
        .chunks(group)
        .map(|chunk| chunk.iter().sum())
        .collect();
    let max = sums.iter().copied().max().unwrap_or(0);
    let line = sums
        .iter()
        .map(|&value| {
            if value == 0 || max == 0 {
                return ' ';
            }
            // ceil(value * 8 / max) - 1: the maximum is the top level, any
            // non-zero value at least the lowest.
            let level = (u128::from(value) * 8).div_ceil(u128::from(max)) - 1;
            LEVELS[usize::try_from(level).unwrap_or(7).min(7)]
        })
        .collect();
    (line, group)
}

fn print_counts(totals: &UsageCounts) {
    let client_errors: u64 = totals.client_errors.values().sum();
    say!("requests:         {}", totals.requests);
    say!("  success (2xx):  {}", totals.success);
    say!("  client errors:  {client_errors}");
    for (code, count) in &totals.client_errors {
        say!("    {code}: {count}");
    }
    say!("  server errors:  {}", totals.server_errors);
    say!("logins:           {}", totals.logins);
    say!("failed logins:    {}", totals.failed_logins);
}

fn print_usage(usage: &KeyUsageResponse, period: Period) {
    say!(
        "API key {}: usage over the last {} (since {}, {} buckets)",
        usage.key_id,
        period,
        time(Some(usage.since)),
        usage.bucket
    );
    say!();
    print_counts(&usage.totals);
    match (&usage.last_used_at, &usage.last_address) {
        (Some(at), Some(address)) => {
            say!("last used:        {} from {address}", time(Some(*at)))
        }
        (at, _) => say!("last used:        {}", time(*at)),
    }
    if usage.distinct_addresses.is_empty() {
        say!("distinct addresses per day: (none)");
    } else {
        say!("distinct addresses per day:");
        for day in &usage.distinct_addresses {
            say!("  {}  {}", day.day.format("%Y-%m-%d"), day.addresses);
        }
    }
    say!();
    let values: Vec<u64> = usage
        .series
        .iter()
        .map(|bucket| bucket.counts.requests)
        .collect();
    let (line, group) = sparkline(&values, SPARK_WIDTH);
    let per = if group == 1 {
        format!("per {}", usage.bucket)
    } else {
        format!(
            "per {group} {}s (adjacent buckets summed to fit)",
            usage.bucket
        )
    };
    let sums = values.chunks(group).map(|chunk| chunk.iter().sum::<u64>());
    let (min, max) = sums.fold((u64::MAX, 0), |(min, max), value| {
        (min.min(value), max.max(value))
    });
    say!("requests {per}, oldest first:");
    say!("  |{line}|");
    say!("  min {}  max {max}", if min == u64::MAX { 0 } else { min });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_levels_and_grouping() {
        assert_eq!(sparkline(&[0, 0, 0], 72), ("   ".to_owned(), 1));
        assert_eq!(sparkline(&[0, 1, 8, 4], 72).0, " ▁█▄");
        assert_eq!(sparkline(&[1, 100], 72).0, "▁█");
        let (line, group) = sparkline(&[1; 145], 72);
        assert_eq!(group, 3);
        assert_eq!(line.chars().count(), 49);
        assert!(sparkline(&[], 72).0.is_empty());
    }
}
