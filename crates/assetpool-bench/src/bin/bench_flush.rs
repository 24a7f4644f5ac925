//! `bench-flush`: the cost of one server's usage flush, apart from any
//! request traffic.
//!
//! It opens a database seeded by `bench-seed`, takes `--keys` of the sampled
//! key ids (`key_ids.txt`), and writes `--flushes` batches through
//! `UsageStore::add_key_usage` as a server with usage tracking on would every
//! 5 s while each of those keys is in use: one count per key for the current
//! minute, and each key's last use with the first flush of a minute (a
//! server reports a key's last use to the minute). The clock is simulated
//! (12 flushes a minute, starting at the next minute), so a run does not
//! wait.
//!
//! Per flush it reports the wall time and the CPU time of the process's
//! threads, split into the runtime's (one thread: this one) and SQLite's
//! (sqlx runs each SQLite connection on a thread of its own), read from
//! `/proc/self/task/*/stat` (Linux; 10 ms ticks, so the totals over the run
//! are what to compare). Under `valgrind --tool=callgrind` it gives
//! repeatable instruction counts of the same work.

use anyhow::Context as _;
use assetpool_core::ids::KeyId;
use assetpool_core::store::prelude::*;
use assetpool_core::store::{KeyLastUse, UsageBatch, UsageDelta, UsageResolution};
use assetpool_store_sqlite::SqliteStore;
use chrono::{Duration, Utc};
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

/// Flushes per simulated minute (one every 5 s).
const FLUSHES_PER_MINUTE: usize = 12;

/// Measures usage flushes against a seeded database.
#[derive(Debug, Parser)]
struct Args {
    /// The database seeded by `bench-seed`, `sqlite://PATH` (it is written to).
    #[arg(long)]
    database: String,
    /// `key_ids.txt` from `bench-seed`.
    #[arg(long)]
    key_ids: PathBuf,
    /// Keys in use (at most the lines of `--key-ids`).
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Flushes to measure.
    #[arg(long, default_value_t = 24)]
    flushes: usize,
}

/// CPU time in clock ticks of this process's threads: (SQLite's, the rest).
fn cpu_ticks() -> anyhow::Result<(u64, u64)> {
    let mut sqlite = 0;
    let mut other = 0;
    for task in std::fs::read_dir("/proc/self/task").context("cannot read /proc/self/task")? {
        let path = task?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue; // the thread ended
        };
        // `pid (comm) state ...`: the name may hold spaces; fields follow the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat(5); 12 and 13 after the name.
        let ticks: u64 = fields
            .get(11..13)
            .unwrap_or_default()
            .iter()
            .filter_map(|field| field.parse::<u64>().ok())
            .sum();
        if name.starts_with("sqlx-sqlite") {
            sqlite += ticks;
        } else {
            other += ticks;
        }
    }
    Ok((sqlite, other))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ids = std::fs::read_to_string(&args.key_ids)
        .with_context(|| format!("cannot read {}", args.key_ids.display()))?;
    let keys: Vec<KeyId> = ids
        .lines()
        .filter(|line| !line.is_empty())
        .take(args.keys)
        .map(KeyId::from)
        .collect();
    anyhow::ensure!(!keys.is_empty(), "no key ids in {}", args.key_ids.display());
    anyhow::ensure!(args.flushes > 0, "--flushes must be at least 1");
    let store = SqliteStore::open(&args.database).await?;
    let start = UsageResolution::Minute.bucket_start(Utc::now()) + Duration::minutes(1);
    println!(
        "flush keys={} wall_ms sqlite_cpu_ms runtime_cpu_ms",
        keys.len()
    );
    let (mut sqlite_total, mut runtime_total, mut wall_total) = (0, 0, 0.0);
    for flush in 0..args.flushes {
        let now = start + Duration::seconds(5 * i64::try_from(flush)?);
        let minute = UsageResolution::Minute.bucket_start(now);
        let batch = UsageBatch {
            counts: keys
                .iter()
                .map(|key_id| UsageDelta {
                    key_id: key_id.clone(),
                    minute,
                    outcome: "2xx".to_owned(),
                    count: 25,
                })
                .collect(),
            addresses: Vec::new(),
            last_uses: if flush % FLUSHES_PER_MINUTE == 0 {
                keys.iter()
                    .map(|key_id| KeyLastUse {
                        key_id: key_id.clone(),
                        at: now,
                        address: Some("127.0.0.1".to_owned()),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        };
        let (sqlite_before, runtime_before) = cpu_ticks()?;
        let started = Instant::now();
        let written = store.add_key_usage(&batch).await?;
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        let (sqlite_after, runtime_after) = cpu_ticks()?;
        anyhow::ensure!(
            written.hour_totals.len() == keys.len(),
            "{} hour totals for {} keys: are the ids from this database?",
            written.hour_totals.len(),
            keys.len()
        );
        // A thread that ended in between takes its ticks with it: never below zero.
        let sqlite = sqlite_after.saturating_sub(sqlite_before) * 10;
        let runtime = runtime_after.saturating_sub(runtime_before) * 10;
        println!("flush {flush} {wall:.1} {sqlite} {runtime}");
        sqlite_total += sqlite;
        runtime_total += runtime;
        wall_total += wall;
    }
    let per_key = |total_ms: f64| total_ms * 1000.0 / (args.flushes as f64 * keys.len() as f64);
    println!(
        "total flushes={} keys={} wall_ms={wall_total:.0} sqlite_cpu_ms={sqlite_total} \
         runtime_cpu_ms={runtime_total} per_key_flush_us: wall={:.1} sqlite={:.1} runtime={:.1}",
        args.flushes,
        keys.len(),
        per_key(wall_total),
        per_key(sqlite_total as f64),
        per_key(runtime_total as f64),
    );
    store.close().await;
    Ok(())
}
