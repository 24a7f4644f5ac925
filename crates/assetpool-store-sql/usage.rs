//! Per-key usage: request counts per minute, hour and day, distinct client
//! addresses per day, the networks a key was used from, and its latest use;
//! and the quota counters every server adds to. What a batch comes to before
//! its SQL (sums per row, one write order, retention periods) is core's
//! `usage_batch`.

use super::keys::raise_last_used;
use super::rows::{count, map_error, millis};
use crate::dialect::{Backend, Connection, Db};
use assetpool_core::clock::from_millis;
use assetpool_core::ids::KeyId;
use assetpool_core::store::{
    AddressSeen, HourTotal, KeyUsage, NetworkSeen, QuotaDelta, StoreResult, UsageBatch,
    UsageBucket, UsageResolution, UsageStore, UsageWritten,
};
use assetpool_core::usage_batch::{prepare, Buckets, NETWORKS_KEPT};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use std::collections::{BTreeMap, HashSet};

#[async_trait]
impl UsageStore for Backend {
    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<Vec<(QuotaDelta, u64)>> {
        let mut transaction = self.write().await?;
        let mut totals = Vec::with_capacity(deltas.len());
        for delta in deltas {
            let total: Option<i64> = sqlx::query_scalar(
                "INSERT INTO api_key_quota_usage (api_key_id, period_start, requests) \
                 SELECT id, $1, $2 FROM api_keys WHERE id = $3 \
                 ON CONFLICT (api_key_id, period_start) \
                 DO UPDATE SET requests = api_key_quota_usage.requests + excluded.requests \
                 RETURNING requests",
            )
            .bind(millis(delta.period_start))
            .bind(i64::try_from(delta.requests).unwrap_or(i64::MAX))
            .bind(delta.key_id.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?;
            // A deleted key has no counter: nothing to learn.
            if let Some(total) = total {
                totals.push((delta.clone(), u64::try_from(total).unwrap_or(0)));
            }
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(totals)
    }

    async fn quota_usage(&self, key_id: &KeyId, period_start: DateTime<Utc>) -> StoreResult<u64> {
        let total: Option<i64> = sqlx::query_scalar(
            "SELECT requests FROM api_key_quota_usage WHERE api_key_id = $1 AND period_start = $2",
        )
        .bind(key_id.as_str())
        .bind(millis(period_start))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(total.map_or(0, |total| u64::try_from(total).unwrap_or(0)))
    }

    async fn prune_quota_usage(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM api_key_quota_usage WHERE period_start < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    async fn add_key_usage(&self, batch: &UsageBatch) -> StoreResult<UsageWritten> {
        let prepared = prepare(batch);
        let mut transaction = self.write().await?;
        let (hour_totals, sums) = add_counts(&mut transaction, &prepared.buckets).await?;
        add_to_totals(&mut transaction, &sums).await?;
        add_addresses(&mut transaction, &prepared.addresses).await?;
        let networks = add_networks(&mut transaction, &prepared.networks).await?;
        add_last_uses(&mut transaction, &prepared.last_uses).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(UsageWritten {
            hour_totals,
            networks,
        })
    }

    /// A key's buckets of one resolution since `since`, its addresses per
    /// day and its latest use, from one snapshot.
    async fn key_usage(
        &self,
        key_id: &KeyId,
        resolution: UsageResolution,
        since: DateTime<Utc>,
    ) -> StoreResult<KeyUsage> {
        let mut transaction = self.read().await?;
        let rows = sqlx::query(concat!(
            "SELECT bucket_start, outcome, count FROM api_key_usage \
             WHERE api_key_id = $1 AND resolution = $2 AND bucket_start >= $3 \
             ORDER BY bucket_start, outcome",
            collate_c!()
        ))
        .bind(key_id.as_str())
        .bind(resolution.as_str())
        .bind(millis(since))
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        let mut usage = KeyUsage::default();
        for row in &rows {
            usage.buckets.push(UsageBucket {
                start: from_millis(row.try_get("bucket_start").map_err(map_error)?),
                outcome: row.try_get("outcome").map_err(map_error)?,
                count: count(row, "count")?,
            });
        }
        let days = sqlx::query(
            "SELECT day, COUNT(DISTINCT address) AS addresses FROM api_key_addresses \
             WHERE api_key_id = $1 AND day >= $2 GROUP BY day ORDER BY day",
        )
        .bind(key_id.as_str())
        .bind(millis(UsageResolution::Day.bucket_start(since)))
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        for row in &days {
            usage.addresses_per_day.push((
                from_millis(row.try_get("day").map_err(map_error)?),
                count(row, "addresses")?,
            ));
        }
        let last = sqlx::query(
            "SELECT k.last_used_at, u.used_at, u.address FROM api_keys k \
             LEFT JOIN api_key_last_use u ON u.api_key_id = k.id WHERE k.id = $1",
        )
        .bind(key_id.as_str())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?;
        if let Some(row) = last {
            let key_time: Option<i64> = row.try_get("last_used_at").map_err(map_error)?;
            let used_at: Option<i64> = row.try_get("used_at").map_err(map_error)?;
            let address: Option<String> = row.try_get("address").map_err(map_error)?;
            (usage.last_used_at, usage.last_address) = latest_use(key_time, used_at, address);
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(usage)
    }

    /// Deletes usage rows past their retention, one autocommit statement each.
    async fn prune_key_usage(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let statements: [(&str, Option<&str>, DateTime<Utc>); 8] = [
            (
                "DELETE FROM api_key_usage WHERE resolution = $1 AND bucket_start < $2",
                Some(UsageResolution::Minute.as_str()),
                now - UsageResolution::Minute.retention(),
            ),
            (
                "DELETE FROM api_key_usage WHERE resolution = $1 AND bucket_start < $2",
                Some(UsageResolution::Hour.as_str()),
                now - UsageResolution::Hour.retention(),
            ),
            (
                "DELETE FROM api_key_usage WHERE resolution = $1 AND bucket_start < $2",
                Some(UsageResolution::Day.as_str()),
                now - UsageResolution::Day.retention(),
            ),
            (
                "DELETE FROM api_key_usage_totals WHERE resolution = $1 AND bucket_start < $2",
                Some(UsageResolution::Minute.as_str()),
                now - UsageResolution::Minute.retention(),
            ),
            (
                "DELETE FROM api_key_usage_totals WHERE resolution = $1 AND bucket_start < $2",
                Some(UsageResolution::Hour.as_str()),
                now - UsageResolution::Hour.retention(),
            ),
            (
                "DELETE FROM api_key_usage_totals WHERE resolution = $1 AND bucket_start < $2",
                Some(UsageResolution::Day.as_str()),
                now - UsageResolution::Day.retention(),
            ),
            (
                "DELETE FROM api_key_addresses WHERE day < $1",
                None,
                now - UsageResolution::Day.retention(),
            ),
            (
                "DELETE FROM api_key_networks WHERE last_seen < $1",
                None,
                now - NETWORKS_KEPT,
            ),
        ];
        let mut deleted = 0;
        for (statement, resolution, before) in statements {
            let mut query = sqlx::query(statement);
            if let Some(resolution) = resolution {
                query = query.bind(resolution);
            }
            let done = query
                .bind(millis(before))
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            deleted += done.rows_affected();
        }
        Ok(deleted)
    }

    /// The sums every flush keeps in `api_key_usage_totals` (a range of its
    /// primary key): a few rows per bucket, however many keys are in use.
    async fn usage_totals(
        &self,
        resolution: UsageResolution,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<UsageBucket>> {
        let rows = sqlx::query(concat!(
            "SELECT bucket_start, outcome, count FROM api_key_usage_totals \
             WHERE resolution = $1 AND bucket_start >= $2 ORDER BY bucket_start, outcome",
            collate_c!()
        ))
        .bind(resolution.as_str())
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(UsageBucket {
                    start: from_millis(row.try_get("bucket_start").map_err(map_error)?),
                    outcome: row.try_get("outcome").map_err(map_error)?,
                    count: count(row, "count")?,
                })
            })
            .collect()
    }
}

/// Bucket rows written per statement (5 parameters each).
const BUCKETS_PER_STATEMENT: usize = 200;

/// What a flush added to every key's usage: (resolution, bucket start,
/// outcome) -> count, in the order the totals' rows are locked.
type Sums<'a> = BTreeMap<(&'static str, i64, &'a str), i64>;

/// Adds the counts to their buckets, many rows per statement; returns the
/// new hour totals and what was added per bucket and outcome over every key.
///
/// Every count has a row of each resolution, so the hour rows go first,
/// joined to `api_keys` (buckets of unknown, deleted, keys are skipped) and
/// returned for the rules that read hour totals; the keys they return are the
/// keys that exist until commit (SQLite has one writer; on PostgreSQL an
/// inserted hour row's foreign-key check holds its key, and an updated one
/// stays locked, which deleting the key, whose rows go with it, waits for).
/// The minute and day rows of those keys follow as plain upserts, with no
/// join and nothing returned (two thirds of the rows; BENCHMARKS.md,
/// `bench-flush`). Each kind is written in key order, hour rows before the
/// others, so concurrent flushes lock rows in one order.
async fn add_counts<'a>(
    connection: &mut Connection,
    buckets: &Buckets<'a>,
) -> StoreResult<(Vec<HourTotal>, Sums<'a>)> {
    let hour = UsageResolution::Hour.as_str();
    let hours: Vec<_> = buckets
        .iter()
        .filter(|((_, resolution, _, _), _)| *resolution == hour)
        .collect();
    let hour_totals = add_hour_counts(connection, &hours).await?;
    let known: HashSet<&str> = hour_totals
        .iter()
        .map(|total| total.key_id.as_str())
        .collect();
    let others: Vec<_> = buckets
        .iter()
        .filter(|((key_id, resolution, _, _), _)| *resolution != hour && known.contains(key_id))
        .collect();
    add_known_counts(connection, &others).await?;
    let mut sums = Sums::new();
    for ((key_id, resolution, start, outcome), added) in buckets {
        if known.contains(key_id) {
            *sums.entry((*resolution, *start, *outcome)).or_default() += *added;
        }
    }
    Ok((hour_totals, sums))
}

/// One bucket row: (key, resolution, bucket start, outcome) and its count.
type BucketRow<'m, 'a> = (&'m (&'a str, &'static str, i64, &'a str), &'m i64);

/// Adds hour rows of keys that exist, in key order; returns their totals.
async fn add_hour_counts(
    connection: &mut Connection,
    hours: &[BucketRow<'_, '_>],
) -> StoreResult<Vec<HourTotal>> {
    let mut hour_totals = Vec::with_capacity(hours.len());
    for chunk in hours.chunks(BUCKETS_PER_STATEMENT) {
        let mut builder =
            sqlx::QueryBuilder::<Db>::new("WITH v (key, start, outcome, added) AS (VALUES ");
        let mut values = builder.separated(", ");
        for ((key_id, _, start, outcome), added) in chunk {
            values.push("(");
            values.push_bind_unseparated(*key_id);
            values.push_unseparated(", ");
            values.push_bind_unseparated(*start);
            values.push_unseparated(", ");
            values.push_bind_unseparated(*outcome);
            values.push_unseparated(", ");
            values.push_bind_unseparated(**added);
            values.push_unseparated(")");
        }
        builder.push(concat!(
            ") INSERT INTO api_key_usage (api_key_id, resolution, bucket_start, outcome, count) \
             SELECT v.key, 'hour', v.start, v.outcome, v.added FROM v \
             JOIN api_keys ON api_keys.id = v.key WHERE TRUE \
             ORDER BY v.key",
            collate_c!(),
            ", v.start, v.outcome",
            collate_c!(),
            " ON CONFLICT (api_key_id, resolution, bucket_start, outcome) \
             DO UPDATE SET count = api_key_usage.count + excluded.count \
             RETURNING api_key_id, bucket_start, outcome, count"
        ));
        let written = builder
            .build()
            .fetch_all(&mut *connection)
            .await
            .map_err(map_error)?;
        for row in &written {
            let total: i64 = row.try_get("count").map_err(map_error)?;
            hour_totals.push(HourTotal {
                key_id: KeyId::from(row.try_get::<String, _>("api_key_id").map_err(map_error)?),
                hour: from_millis(row.try_get("bucket_start").map_err(map_error)?),
                outcome: row.try_get("outcome").map_err(map_error)?,
                total: u64::try_from(total).unwrap_or(0),
            });
        }
    }
    Ok(hour_totals)
}

/// Adds rows of keys known to exist (their hour rows were just written), in
/// the order given: plain upserts, nothing returned.
async fn add_known_counts(
    connection: &mut Connection,
    rows: &[BucketRow<'_, '_>],
) -> StoreResult<()> {
    for chunk in rows.chunks(BUCKETS_PER_STATEMENT) {
        let mut builder = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO api_key_usage (api_key_id, resolution, bucket_start, outcome, count) ",
        );
        builder.push_values(
            chunk,
            |mut values, ((key_id, resolution, start, outcome), added)| {
                values
                    .push_bind(*key_id)
                    .push_bind(*resolution)
                    .push_bind(*start)
                    .push_bind(*outcome)
                    .push_bind(**added);
            },
        );
        builder.push(
            " ON CONFLICT (api_key_id, resolution, bucket_start, outcome) \
             DO UPDATE SET count = api_key_usage.count + excluded.count",
        );
        builder
            .build()
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

/// Adds a flush's sums to `api_key_usage_totals` (the overview's), in one
/// order, after every per-key row (which a concurrent flush may wait for).
async fn add_to_totals(connection: &mut Connection, sums: &Sums<'_>) -> StoreResult<()> {
    let rows: Vec<_> = sums.iter().collect();
    for chunk in rows.chunks(BUCKETS_PER_STATEMENT) {
        let mut builder = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO api_key_usage_totals (resolution, bucket_start, outcome, count) ",
        );
        builder.push_values(
            chunk,
            |mut values, ((resolution, start, outcome), added)| {
                values
                    .push_bind(*resolution)
                    .push_bind(*start)
                    .push_bind(*outcome)
                    .push_bind(**added);
            },
        );
        builder.push(
            " ON CONFLICT (resolution, bucket_start, outcome) \
             DO UPDATE SET count = api_key_usage_totals.count + excluded.count",
        );
        builder
            .build()
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

/// Records the addresses of each day.
async fn add_addresses(
    connection: &mut Connection,
    addresses: &[(&str, i64, &str)],
) -> StoreResult<()> {
    for (key_id, day, address) in addresses {
        sqlx::query(
            "INSERT INTO api_key_addresses (api_key_id, day, address) \
             SELECT id, $1, $2 FROM api_keys WHERE id = $3 ON CONFLICT DO NOTHING",
        )
        .bind(*day)
        .bind(*address)
        .bind(*key_id)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    }
    Ok(())
}

/// Records the latest use of each network; returns what was known of each before.
async fn add_networks(
    connection: &mut Connection,
    networks: &BTreeMap<(&str, &str), &AddressSeen>,
) -> StoreResult<Vec<NetworkSeen>> {
    let mut seen_networks = Vec::with_capacity(networks.len());
    // What was known of each network before this batch, read before any
    // of its networks is written.
    let mut before = Vec::with_capacity(networks.len());
    for ((key_id, network), seen) in networks {
        let previously: Option<i64> = sqlx::query_scalar(
            "SELECT last_seen FROM api_key_networks WHERE api_key_id = $1 AND network = $2",
        )
        .bind(*key_id)
        .bind(*network)
        .fetch_optional(&mut *connection)
        .await
        .map_err(map_error)?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_key_networks WHERE api_key_id = $1 AND network <> $2",
        )
        .bind(*key_id)
        .bind(*network)
        .fetch_one(&mut *connection)
        .await
        .map_err(map_error)?;
        before.push((*seen, previously, others));
    }
    for (seen, previously, others) in before {
        let stored: Option<i64> = sqlx::query_scalar(concat!(
            "INSERT INTO api_key_networks (api_key_id, network, last_seen) \
             SELECT id, $1, $2 FROM api_keys WHERE id = $3 \
             ON CONFLICT (api_key_id, network) DO UPDATE SET last_seen = ",
            greatest!(),
            "(api_key_networks.last_seen, excluded.last_seen) RETURNING last_seen"
        ))
        .bind(&seen.network)
        .bind(millis(seen.at))
        .bind(seen.key_id.as_str())
        .fetch_optional(&mut *connection)
        .await
        .map_err(map_error)?;
        if stored.is_some() {
            seen_networks.push(NetworkSeen {
                seen: seen.clone(),
                previously_seen: previously.map(from_millis),
                other_networks: u64::try_from(others).unwrap_or(0),
            });
        }
    }
    Ok(seen_networks)
}

/// Records newer last uses, in the usage table and on the key, many keys per
/// statement, in key order (the map's); unknown (deleted) keys are skipped.
async fn add_last_uses(
    connection: &mut Connection,
    last_uses: &BTreeMap<&str, (DateTime<Utc>, Option<&str>)>,
) -> StoreResult<()> {
    let rows: Vec<(&str, i64, Option<&str>)> = last_uses
        .iter()
        .map(|(key_id, (at, address))| (*key_id, millis(*at), *address))
        .collect();
    for chunk in rows.chunks(LAST_USES_PER_STATEMENT) {
        let mut builder = sqlx::QueryBuilder::<Db>::new("WITH v (id, used_at, address) AS (");
        builder.push_values(chunk, |mut row, (key_id, used_at, address)| {
            row.push_bind(*key_id)
                .push_bind(*used_at)
                .push_bind(*address);
        });
        builder.push(concat!(
            ") INSERT INTO api_key_last_use (api_key_id, used_at, address) \
             SELECT v.id, v.used_at, v.address FROM v \
             JOIN api_keys ON api_keys.id = v.id WHERE TRUE ORDER BY v.id",
            collate_c!(),
            " ON CONFLICT (api_key_id) DO UPDATE SET \
             used_at = excluded.used_at, address = excluded.address \
             WHERE excluded.used_at > api_key_last_use.used_at"
        ));
        builder
            .build()
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
    }
    let uses: Vec<(&str, i64)> = rows
        .iter()
        .map(|(key_id, used_at, _)| (*key_id, *used_at))
        .collect();
    raise_last_used(connection, &uses).await
}

/// Last uses written per statement (3 parameters each).
const LAST_USES_PER_STATEMENT: usize = 300;

/// The latest use: the usage record's, unless the key's own column (also
/// written by `record_api_key_use`) is newer, whose address is unknown.
pub(crate) fn latest_use(
    key_time: Option<i64>,
    used_at: Option<i64>,
    address: Option<String>,
) -> (Option<DateTime<Utc>>, Option<String>) {
    match (key_time, used_at) {
        (Some(key_time), Some(used_at)) if key_time > used_at => {
            (Some(from_millis(key_time)), None)
        }
        (_, Some(used_at)) => (Some(from_millis(used_at)), address),
        (key_time, None) => (key_time.map(from_millis), None),
    }
}
