//! Leaked keys: is a reported string a key of this service, and what to do
//! when one is found in public (GitHub's secret scanning partner program,
//! `assetpool keys check-leak`).
//!
//! A candidate is matched by the SHA-256 of its text, as storage knows keys;
//! the reported value itself is never stored or logged. A candidate that is
//! not a well-formed key (shape and checksum) is answered without any storage
//! read.
//!
//! A report answers `true_positive` for every key of this service, whatever
//! its status: the partner program's label means "this is a real credential
//! of yours", and a revoked or expired key that leaked is still one (the
//! scanner then stops reporting it as noise). Only a *live* key (active,
//! rotating within its grace period, or disabled, since an enable would
//! bring it back) raises a `key_leaked` alert and, under
//! [`LeakPolicy::Revoke`], is revoked.

use crate::admin::Actor;
use crate::alerts::{AlertRule, Trigger};
use crate::api_key::{ApiKeySecret, SecretHash};
use crate::store::{ApiKeyRecord, Store};
use crate::{ApiKeyStatus, AuthService, ServiceError};
use assetpool_wire::{LeakReport, LeakVerdict};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// The actor the audit log names for a revocation by a leak report.
pub const LEAK_REPORT_ACTOR: &str = "leak-report";
/// The revocation reason kept with a key revoked by a leak report.
pub const LEAK_REVOKE_REASON: &str = "reported as leaked";
/// Longest URL, type or source kept in an alert's evidence (longer ones are cut).
const MAX_EVIDENCE_CHARS: usize = 2048;

/// What happens to a live key reported as leaked (`--on-leak`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeakPolicy {
    /// Raise a `key_leaked` alert only (the default).
    #[default]
    Alert,
    /// Raise the alert and revoke the key at once.
    Revoke,
}

impl LeakPolicy {
    /// The name: `alert` or `revoke`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeakPolicy::Alert => "alert",
            LeakPolicy::Revoke => "revoke",
        }
    }

    /// Parses `alert` or `revoke` (case-insensitive).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "alert" => Ok(LeakPolicy::Alert),
            "revoke" => Ok(LeakPolicy::Revoke),
            _ => Err("expected alert or revoke".to_owned()),
        }
    }
}

impl std::fmt::Display for LeakPolicy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The answer for one candidate string.
#[derive(Debug, Clone)]
pub struct CandidateCheck {
    /// SHA-256 of the candidate text, as reported back to scanners.
    pub token_hash: SecretHash,
    /// The key it is, if it is a key of this service.
    pub key: Option<ApiKeyRecord>,
    /// The key's status at the time of the check.
    pub status: Option<ApiKeyStatus>,
}

impl CandidateCheck {
    /// Whether it is a key of this service (whatever its status).
    pub fn is_known(&self) -> bool {
        self.key.is_some()
    }

    /// Whether it is a key that still opens the door or may again (active,
    /// rotating, or disabled).
    pub fn is_live(&self) -> bool {
        matches!(
            self.status,
            Some(ApiKeyStatus::Active | ApiKeyStatus::Rotating | ApiKeyStatus::Disabled)
        )
    }
}

/// Looks each candidate up, in order. A malformed candidate is not a key and
/// costs no storage read; a repeated one is read once.
pub async fn check_candidates<S: AsRef<str>>(
    store: &dyn Store,
    candidates: &[S],
    now: DateTime<Utc>,
) -> Result<Vec<CandidateCheck>, ServiceError> {
    let mut found: HashMap<SecretHash, Option<ApiKeyRecord>> = HashMap::new();
    let mut checks = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let text = candidate.as_ref();
        let token_hash = SecretHash::of(text);
        let key = match ApiKeySecret::parse(text) {
            Err(_) => None,
            Ok(secret) => match found.get(&token_hash) {
                Some(known) => known.clone(),
                None => {
                    let key = store.api_key_by_hash(&secret.hash()).await?;
                    found.insert(token_hash, key.clone());
                    key
                }
            },
        };
        let status = key.as_ref().map(|key| key.status(now));
        checks.push(CandidateCheck {
            token_hash,
            key,
            status,
        });
    }
    Ok(checks)
}

/// Answers a batch of reports (see the module documentation): one verdict
/// per report, in order. For every live key among them, once per key: a
/// `key_leaked` alert is stored (unless the rule is disabled) before this
/// returns, and under [`LeakPolicy::Revoke`] the key is revoked, audited as
/// `service:leak-report`. The alert comes first, so that a failed revocation
/// retried by the scanner still finds the key live and folds into the same alert.
pub async fn handle_reports(
    service: &AuthService,
    reports: &[LeakReport],
    policy: LeakPolicy,
) -> Result<Vec<LeakVerdict>, ServiceError> {
    let now = service.clock().now();
    let tokens: Vec<&str> = reports.iter().map(|report| report.token.as_str()).collect();
    let checks = check_candidates(service.store().as_ref(), &tokens, now).await?;
    let mut handled = HashSet::new();
    let mut verdicts = Vec::with_capacity(reports.len());
    for (report, check) in reports.iter().zip(&checks) {
        verdicts.push(LeakVerdict {
            token_hash: check.token_hash.to_hex(),
            token_type: report.kind.clone(),
            label: if check.is_known() {
                "true_positive"
            } else {
                "false_positive"
            }
            .to_owned(),
        });
        let Some(key) = check.key.as_ref().filter(|_| check.is_live()) else {
            continue;
        };
        if !handled.insert(key.id.clone()) {
            continue;
        }
        tracing::warn!(key = %key.id, policy = %policy, "a live API key was reported as leaked");
        act_on_leak(service, key, report, policy, now).await?;
    }
    Ok(verdicts)
}

/// Raises the alert of one leaked live key, then applies the policy.
async fn act_on_leak(
    service: &AuthService,
    key: &ApiKeyRecord,
    report: &LeakReport,
    policy: LeakPolicy,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let alerts = service.alerts();
    if alerts.enabled(AlertRule::KeyLeaked) {
        let evidence = serde_json::json!({
            "url": cut(&report.url),
            "source": cut(&report.source),
            "type": cut(&report.kind),
            "keyPrefix": key.prefix,
            "policy": policy.as_str(),
        });
        let trigger = Trigger::for_key(AlertRule::KeyLeaked, &key.id, evidence, now);
        alerts.raise(service.store().as_ref(), trigger).await?;
    }
    if policy == LeakPolicy::Revoke {
        let admin = service.admin(Actor::Service {
            name: LEAK_REPORT_ACTOR.to_owned(),
        });
        admin
            .revoke_api_key(&key.id, Some(LEAK_REVOKE_REASON))
            .await?;
    }
    Ok(())
}

/// At most [`MAX_EVIDENCE_CHARS`] characters of a reported field.
fn cut(text: &str) -> String {
    text.chars().take(MAX_EVIDENCE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse() {
        assert_eq!(LeakPolicy::parse("alert"), Ok(LeakPolicy::Alert));
        assert_eq!(LeakPolicy::parse(" Revoke "), Ok(LeakPolicy::Revoke));
        assert!(LeakPolicy::parse("delete").is_err());
        assert_eq!(LeakPolicy::default(), LeakPolicy::Alert);
        assert_eq!(LeakPolicy::Revoke.to_string(), "revoke");
    }

    #[test]
    fn disabled_keys_are_live_revoked_and_expired_ones_not() {
        let check = |status| CandidateCheck {
            token_hash: SecretHash([0; 32]),
            key: None,
            status: Some(status),
        };
        assert!(check(ApiKeyStatus::Disabled).is_live());
        assert!(check(ApiKeyStatus::Rotating).is_live());
        assert!(!check(ApiKeyStatus::Revoked).is_live());
        assert!(!check(ApiKeyStatus::Expired).is_live());
    }

    #[test]
    fn evidence_fields_are_bounded() {
        let long = "x".repeat(MAX_EVIDENCE_CHARS + 10);
        assert_eq!(cut(&long).chars().count(), MAX_EVIDENCE_CHARS);
        assert_eq!(cut("https://example.com"), "https://example.com");
    }
}
