//! Support staff's view of monitoring: key usage, alerts, the audit log and
//! owner webhooks.

use super::{Admin, Listed, MAX_PAGE};
use crate::alerts::alert_response;
use crate::ids::{AlertId, ApplicationId, KeyId};
use crate::store::{
    AuditRecord, DeliveryStatus, KeyUsage, KeyWebhook, Page, ThrottleEntry, UsageBucket,
    UsageResolution,
};
use crate::webhook_target::check_webhook_target;
use crate::ServiceError;
use assetpool_wire::{
    AlertResponse, AuditEntryResponse, DailyAddresses, ErrorCode, KeyUsageResponse,
    LoginFailureResponse, UsageBucketResponse, UsageCounts,
};
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use std::collections::BTreeMap;

/// The wire form of a failed-login counter (`users attempts`).
pub fn login_failure_response(entry: &ThrottleEntry) -> LoginFailureResponse {
    LoginFailureResponse {
        scope: entry.scope.as_str().to_owned(),
        account: (!entry.account.is_empty()).then(|| entry.account.clone()),
        address: (!entry.address.is_empty()).then(|| entry.address.clone()),
        failures: entry.counter.failures,
        last_failure: entry.counter.last_failure,
        api_key: entry.api_key_id.as_ref().map(ToString::to_string),
    }
}

/// Longest URL accepted for a webhook.
const MAX_URL_BYTES: usize = 2048;

/// Adds `count` of the stored `outcome` to `counts`.
pub fn outcome_counts_add(counts: &mut UsageCounts, outcome: &str, count: u64) {
    match outcome {
        "2xx" => {
            counts.success += count;
            counts.requests += count;
        }
        "5xx" => {
            counts.server_errors += count;
            counts.requests += count;
        }
        "login" => counts.logins += count,
        "login_failed" => counts.failed_logins += count,
        other => {
            let code = other.strip_prefix("4xx:").unwrap_or(other);
            *counts.client_errors.entry(code.to_owned()).or_default() += count;
            counts.requests += count;
        }
    }
}

/// The wire form of a key's usage: every bucket from the one holding
/// `since` to the one holding `now`, empty ones included.
pub fn usage_response(
    key_id: &KeyId,
    resolution: UsageResolution,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    usage: &KeyUsage,
) -> KeyUsageResponse {
    let series = usage_series(resolution, since, now, &usage.buckets);
    KeyUsageResponse {
        key_id: key_id.to_string(),
        bucket: resolution.as_str().to_owned(),
        since: series.since,
        series: series.series,
        totals: series.totals,
        distinct_addresses: usage
            .addresses_per_day
            .iter()
            .map(|(day, addresses)| DailyAddresses {
                day: *day,
                addresses: *addresses,
            })
            .collect(),
        last_used_at: usage.last_used_at,
        last_address: usage.last_address.clone(),
    }
}

/// A usage series: every bucket from the one holding `since` to the one
/// holding `now`, empty ones included, with the totals.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSeries {
    /// The start of the first bucket.
    pub since: DateTime<Utc>,
    /// The buckets, oldest first.
    pub series: Vec<UsageBucketResponse>,
    /// The sums over the series.
    pub totals: UsageCounts,
}

/// The series of `buckets` (stored rows, one per bucket and outcome) from
/// the bucket holding `since` to the one holding `now`.
pub fn usage_series(
    resolution: UsageResolution,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    buckets: &[UsageBucket],
) -> UsageSeries {
    let first = resolution.bucket_start(since);
    let last = resolution.bucket_start(now);
    let step = Duration::milliseconds(resolution.millis());
    let mut by_start: BTreeMap<DateTime<Utc>, UsageCounts> = BTreeMap::new();
    let mut start = first;
    while start <= last {
        by_start.insert(start, UsageCounts::default());
        start += step;
    }
    let mut totals = UsageCounts::default();
    for bucket in buckets {
        let counts = by_start.entry(bucket.start).or_default();
        outcome_counts_add(counts, &bucket.outcome, bucket.count);
        outcome_counts_add(&mut totals, &bucket.outcome, bucket.count);
    }
    UsageSeries {
        since: first,
        series: by_start
            .into_iter()
            .map(|(start, counts)| UsageBucketResponse { start, counts })
            .collect(),
        totals,
    }
}

/// A key's owner webhook as the console shows it: the URL without user
/// info, query or fragment (never the secret), and its latest deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerWebhook {
    /// The key.
    pub key_id: KeyId,
    /// The URL, redacted as in the audit log.
    pub url: String,
    /// The latest deliveries, newest first.
    pub deliveries: Vec<DeliveryStatus>,
}

/// Refuses a period longer than `resolution`'s buckets are kept, or not
/// positive.
fn check_period(resolution: UsageResolution, period: Duration) -> Result<(), ServiceError> {
    if period <= Duration::zero() {
        return Err(ServiceError::invalid_request("the period must be positive"));
    }
    if period > resolution.retention() {
        return Err(ServiceError::invalid_request(match resolution {
            UsageResolution::Minute => "minute buckets are kept 48 hours: use --bucket hour",
            UsageResolution::Hour => "hour buckets are kept 90 days: use --bucket day",
            UsageResolution::Day => "day buckets are kept 2 years",
        }));
    }
    Ok(())
}

fn page(before: Option<i64>, limit: u32) -> Page {
    Page {
        before,
        limit: limit.clamp(1, MAX_PAGE),
    }
}

fn listed<T>(items: Vec<(i64, T)>, limit: u32) -> Listed<T> {
    let full = items.len() >= limit.clamp(1, MAX_PAGE) as usize;
    let next_before = if full {
        items.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Listed {
        items: items.into_iter().map(|(_, item)| item).collect(),
        next_before,
    }
}

/// The wire form of an audit entry.
pub fn audit_response(record: &AuditRecord) -> AuditEntryResponse {
    let entry = &record.entry;
    AuditEntryResponse {
        id: record.seq,
        at: entry.at,
        actor: entry.actor.clone(),
        actor_id: entry.actor_id.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        outcome: entry.outcome.clone(),
        error: entry.error.clone(),
        detail: serde_json::from_str(&entry.detail)
            .unwrap_or_else(|_| serde_json::Value::Object(serde_json::Map::new())),
    }
}

impl Admin {
    /// A key's usage over the last `period`, in buckets of `resolution`.
    pub async fn key_usage(
        &self,
        id: &KeyId,
        resolution: UsageResolution,
        period: Duration,
    ) -> Result<KeyUsageResponse, ServiceError> {
        check_period(resolution, period)?;
        self.store.api_key(id).await?.ok_or_else(|| {
            ServiceError::refused_with(ErrorCode::NotFound, "no API key with that id")
        })?;
        let now = self.clock.now();
        let since = now - period;
        let usage = self
            .store
            .key_usage(id, resolution, resolution.bucket_start(since))
            .await?;
        Ok(usage_response(id, resolution, since, now, &usage))
    }

    /// Alerts last seen within `within` (all if `None`), newest first.
    pub async fn list_alerts(
        &self,
        within: Option<Duration>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Listed<AlertResponse>, ServiceError> {
        let since = within.map(|within| self.clock.now() - within);
        let alerts = self.store.list_alerts(since, page(before, limit)).await?;
        Ok(listed(
            alerts
                .iter()
                .map(|alert| (alert.seq, alert_response(alert)))
                .collect(),
            limit,
        ))
    }

    /// Acknowledges an alert.
    pub async fn ack_alert(&self, id: &AlertId) -> Result<AlertResponse, ServiceError> {
        let change = self.change("alert.ack", id.as_str(), serde_json::json!({}));
        let result = async {
            let alert = change
                .store
                .ack_alert(id, &self.actor.name(), self.clock.now())
                .await
                .map_err(super::not_found("no alert with that id"))?;
            Ok(alert_response(&alert))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// The audit log, newest first.
    pub async fn list_audit(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Listed<AuditEntryResponse>, ServiceError> {
        let entries = self.store.list_audit(page(before, limit)).await?;
        Ok(listed(
            entries
                .iter()
                .map(|record| (record.seq, audit_response(record)))
                .collect(),
            limit,
        ))
    }

    /// The usage of every key over the last `period`, in buckets of
    /// `resolution` (the console's overview).
    pub async fn usage_overview(
        &self,
        resolution: UsageResolution,
        period: Duration,
    ) -> Result<UsageSeries, ServiceError> {
        check_period(resolution, period)?;
        let now = self.clock.now();
        let since = now - period;
        let buckets = self
            .store
            .usage_totals(resolution, resolution.bucket_start(since))
            .await?;
        Ok(usage_series(resolution, since, now, &buckets))
    }

    /// Alerts about the keys of application `id`, newest first.
    pub async fn application_alerts(
        &self,
        id: &ApplicationId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Listed<AlertResponse>, ServiceError> {
        let alerts = self
            .store
            .application_alerts(id, page(before, limit))
            .await?;
        Ok(listed(
            alerts
                .iter()
                .map(|alert| (alert.seq, alert_response(alert)))
                .collect(),
            limit,
        ))
    }

    /// The owner webhooks of application `id`'s keys (at most `webhooks`,
    /// in key id order), each with its latest `deliveries`.
    pub async fn application_webhooks(
        &self,
        id: &ApplicationId,
        webhooks: u32,
        deliveries: u32,
    ) -> Result<Vec<OwnerWebhook>, ServiceError> {
        let found = self
            .store
            .application_key_webhooks(id, webhooks.clamp(1, MAX_PAGE))
            .await?;
        // One indexed read per webhook, run side by side (bounded by the
        // connection pool), put back in the order found.
        let limit = deliveries.clamp(1, MAX_PAGE);
        let mut reads = tokio::task::JoinSet::new();
        for (position, (key_id, url)) in found.into_iter().enumerate() {
            let store = self.store.clone();
            reads.spawn(async move {
                let deliveries = store.key_webhook_deliveries(&key_id, limit).await;
                (position, key_id, url, deliveries)
            });
        }
        let mut shown = Vec::with_capacity(reads.len());
        while let Some(read) = reads.join_next().await {
            let (position, key_id, url, deliveries) =
                read.map_err(|error| ServiceError::Internal(error.to_string()))?;
            shown.push((
                position,
                OwnerWebhook {
                    key_id,
                    url: redact_url(&url),
                    deliveries: deliveries?,
                },
            ));
        }
        shown.sort_by_key(|(position, _)| *position);
        Ok(shown.into_iter().map(|(_, webhook)| webhook).collect())
    }

    /// Sets a key's owner webhook, returning its new signing secret (shown
    /// once), or removes it with `None`.
    pub async fn set_key_webhook(
        &self,
        id: &KeyId,
        url: Option<&str>,
    ) -> Result<Option<SecretString>, ServiceError> {
        let detail = serde_json::json!({ "url": url.map(redact_url) });
        let change = self.change("key.webhook", id.as_str(), detail);
        let result = async {
            self.store.api_key(id).await?.ok_or_else(|| {
                ServiceError::refused_with(ErrorCode::NotFound, "no API key with that id")
            })?;
            let Some(url) = url else {
                change.store.set_key_webhook(id, None).await?;
                return Ok(None);
            };
            let url = validate_webhook_url(url)?;
            check_webhook_target(&url, self.webhook_targets)?;
            let secret = new_webhook_secret();
            let sealed_secret = {
                use secrecy::ExposeSecret as _;
                self.sealer
                    .seal(&webhook_seal_id(id), secret.expose_secret().as_bytes())
                    .map_err(|error| ServiceError::Internal(error.to_string()))?
            };
            change
                .store
                .set_key_webhook(id, Some(&KeyWebhook { url, sealed_secret }))
                .await?;
            Ok(Some(secret))
        }
        .await;
        self.settle(change, &result).await;
        result
    }
}

/// The id a key's webhook secret is sealed under.
pub fn webhook_seal_id(key_id: &KeyId) -> String {
    format!("webhook:{key_id}")
}

/// A webhook URL must be absolute http(s), printable, and short.
pub fn validate_webhook_url(url: &str) -> Result<String, ServiceError> {
    let trimmed = url.trim();
    let scheme_ok = trimmed.starts_with("https://") || trimmed.starts_with("http://");
    let host_ok = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok
        || !host_ok
        || trimmed.len() > MAX_URL_BYTES
        || trimmed
            .chars()
            .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err(ServiceError::invalid_request(
            "the webhook URL must be an absolute http:// or https:// URL",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A URL as the audit log shows it: without user info, query or fragment.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{rest}")
}

/// A new webhook signing secret: `whsec_` and 32 random bytes, base64url.
fn new_webhook_secret() -> SecretString {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString::from(format!("whsec_{encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(validate_webhook_url("https://hooks.example.com/a").is_ok());
        assert!(validate_webhook_url("http://127.0.0.1:9/x").is_ok());
        assert!(validate_webhook_url("ftp://x").is_err());
        assert!(validate_webhook_url("https://").is_err());
        assert!(validate_webhook_url("https://a b").is_err());
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com/a?token=x"),
            "https://hooks.example.com/a"
        );
    }

    #[test]
    fn series_fill_empty_buckets_and_sum() {
        let now = crate::clock::from_millis(10 * 60_000 + 5_000);
        let since = now - Duration::minutes(3);
        let usage = KeyUsage {
            buckets: vec![
                crate::store::UsageBucket {
                    start: crate::clock::from_millis(8 * 60_000),
                    outcome: "2xx".into(),
                    count: 3,
                },
                crate::store::UsageBucket {
                    start: crate::clock::from_millis(8 * 60_000),
                    outcome: "4xx:token_expired".into(),
                    count: 1,
                },
                crate::store::UsageBucket {
                    start: crate::clock::from_millis(10 * 60_000),
                    outcome: "login_failed".into(),
                    count: 2,
                },
            ],
            ..KeyUsage::default()
        };
        let response = usage_response(
            &KeyId::from("key_1"),
            UsageResolution::Minute,
            since,
            now,
            &usage,
        );
        assert_eq!(response.series.len(), 4);
        assert_eq!(response.series[1].counts.requests, 4);
        assert_eq!(response.totals.success, 3);
        assert_eq!(response.totals.client_errors["token_expired"], 1);
        assert_eq!(response.totals.failed_logins, 2);
        assert_eq!(response.totals.requests, 4);
    }
}
