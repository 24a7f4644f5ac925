//! What pages show, prepared from the core's answers: times as short UTC
//! text, optional values with a word for their absence, and one row type
//! per listed record.

use assetpool_wire::{AlertResponse, ApiKeyResponse, AuditEntryResponse};
use chrono::{DateTime, Utc};

/// A time as `2026-01-31 12:00 UTC`.
pub fn when(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional time, `absent` when there is none.
pub fn when_or(time: Option<DateTime<Utc>>, absent: &str) -> String {
    time.map_or_else(|| absent.to_owned(), when)
}

/// A key as lists and its page show it (never its secret: the console has
/// only its non-secret prefix).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub environment: &'static str,
    pub application: String,
    pub status: &'static str,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub prefix: String,
    pub scopes: String,
    pub allowed_cidrs: String,
    pub metadata: String,
    pub owner: String,
    pub limits: String,
    pub revoked: String,
    pub successor: String,
    /// Whether it may be rotated (active).
    pub can_rotate: bool,
    /// Whether it may be revoked (active, rotating or disabled).
    pub can_revoke: bool,
    pub disabled: bool,
}

impl From<&ApiKeyResponse> for KeyRow {
    fn from(key: &ApiKeyResponse) -> Self {
        let status = key.status.as_str();
        let limits = [
            key.rate_limit.as_ref().map(|rate| format!("rate {rate}")),
            key.burst.map(|burst| format!("burst {burst}")),
            key.quota.as_ref().map(|quota| format!("quota {quota}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        KeyRow {
            id: key.id.clone(),
            name: key.name.clone(),
            environment: key.environment.as_str(),
            application: key.application.clone(),
            status,
            created: when(key.created_at),
            expires: when_or(key.expires_at, "never"),
            last_used: when_or(key.last_used_at, "never"),
            prefix: key.prefix.clone(),
            scopes: key
                .scopes
                .as_ref()
                .map_or_else(|| "unrestricted".to_owned(), |scopes| scopes.join(" ")),
            allowed_cidrs: key
                .allowed_cidrs
                .as_ref()
                .map_or_else(|| "any address".to_owned(), |cidrs| cidrs.join(", ")),
            metadata: key.metadata.as_ref().map_or_else(
                || "none".to_owned(),
                |metadata| serde_json::Value::Object(metadata.clone()).to_string(),
            ),
            owner: key.owner.clone().unwrap_or_else(|| "none".to_owned()),
            limits: if limits.is_empty() {
                "none".to_owned()
            } else {
                limits
            },
            revoked: match (&key.revoked_at, &key.revoked_reason) {
                (Some(at), Some(reason)) => format!("{} ({reason})", when(*at)),
                (Some(at), None) => when(*at),
                _ => String::new(),
            },
            successor: key.successor.clone().unwrap_or_default(),
            can_rotate: status == "active",
            can_revoke: matches!(status, "active" | "rotating" | "disabled"),
            disabled: status == "disabled",
        }
    }
}

/// An alert as the alert lists show it.
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: String,
    pub rule: String,
    pub subject: String,
    pub api_key: String,
    pub first_seen: String,
    pub last_seen: String,
    pub occurrences: u64,
    pub acknowledged: String,
    pub open: bool,
}

impl From<&AlertResponse> for AlertRow {
    fn from(alert: &AlertResponse) -> Self {
        AlertRow {
            id: alert.id.clone(),
            rule: alert.rule.clone(),
            subject: alert.subject.clone(),
            api_key: alert.api_key.clone().unwrap_or_default(),
            first_seen: when(alert.first_seen_at),
            last_seen: when(alert.last_seen_at),
            occurrences: alert.occurrences,
            acknowledged: match (&alert.acknowledged_at, &alert.acknowledged_by) {
                (Some(at), Some(by)) => format!("{} by {by}", when(*at)),
                (Some(at), None) => when(*at),
                _ => String::new(),
            },
            open: alert.acknowledged_at.is_none(),
        }
    }
}

/// An audit entry as the audit log shows it.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
}

impl From<&AuditEntryResponse> for AuditRow {
    fn from(entry: &AuditEntryResponse) -> Self {
        AuditRow {
            at: when(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            outcome: match &entry.error {
                Some(error) => format!("{} ({error})", entry.outcome),
                None => entry.outcome.clone(),
            },
            detail: entry.detail.to_string(),
        }
    }
}
