//! Shapes of key usage, alerts, the audit log and leaked-key reports, as
//! printed by the commands (`--json`), served by the admin API and sent to webhooks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A key's usage over a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsageResponse {
    /// Key id.
    pub key_id: String,
    /// `minute`, `hour` or `day`.
    pub bucket: String,
    /// Start of the period shown.
    pub since: DateTime<Utc>,
    /// One entry per bucket of the period, oldest first (empty buckets included).
    pub series: Vec<UsageBucketResponse>,
    /// Totals over the period.
    pub totals: UsageCounts,
    /// Distinct client addresses per day of the period.
    pub distinct_addresses: Vec<DailyAddresses>,
    /// Latest recorded use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Client address of the latest recorded use.
    pub last_address: Option<String>,
}

/// Counts of one bucket (or of a whole period).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageCounts {
    /// Every request (2xx + 4xx + 5xx).
    pub requests: u64,
    /// Answered with 2xx.
    pub success: u64,
    /// Refused or failed with 4xx, by error code.
    pub client_errors: std::collections::BTreeMap<String, u64>,
    /// Answered with 5xx.
    pub server_errors: u64,
    /// Successful logins.
    pub logins: u64,
    /// Failed logins.
    pub failed_logins: u64,
}

/// One bucket of a usage series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucketResponse {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Its counts.
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// Distinct client addresses of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyAddresses {
    /// Start of the day (UTC).
    pub day: DateTime<Utc>,
    /// Distinct addresses.
    pub addresses: u64,
}

/// An alert on suspicious use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertResponse {
    /// Alert id (`alr_...`).
    pub id: String,
    /// The rule that raised it, e.g. `revoked_key_used`.
    pub rule: String,
    /// What the episode is about (`key:<id>`, `account:<email>`).
    pub subject: String,
    /// The key concerned, if any.
    pub api_key: Option<String>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Evidence of the latest trigger.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// First trigger of the episode.
    pub first_seen_at: DateTime<Utc>,
    /// Latest trigger of the episode.
    pub last_seen_at: DateTime<Utc>,
    /// Triggers in the episode.
    pub occurrences: u64,
    /// When acknowledged.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
}

/// The body POSTed to alert webhooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertWebhookPayload {
    /// Always `alert.raised`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Delivery id, the same on every attempt: receivers drop ids already seen.
    pub delivery_id: String,
    /// The alert as first raised.
    pub alert: AlertResponse,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryResponse {
    /// Position in the log.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `cli:<os user>` or `admin:<email>`.
    pub actor: String,
    /// The admin user's id when the actor is one.
    pub actor_id: Option<String>,
    /// What, e.g. `key.revoke`.
    pub action: String,
    /// On what.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Error code of a failure.
    pub error: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// One report of GitHub's secret scanning partner program.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeakReport {
    /// The leaked value.
    pub token: String,
    /// The token type as registered with the scanner.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Where it was found.
    #[serde(default)]
    pub url: String,
    /// The kind of place it was found in (`content`, `commit`, ...).
    #[serde(default)]
    pub source: String,
}

impl std::fmt::Debug for LeakReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LeakReport")
            .field("token", &"[redacted]")
            .field("type", &self.kind)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish()
    }
}

/// The answer for one reported token, in the partner program's format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeakVerdict {
    /// SHA-256 of the reported token, hex (never the token itself).
    pub token_hash: String,
    /// The type as reported.
    pub token_type: String,
    /// `true_positive` (a live key of this service) or `false_positive`.
    pub label: String,
}
