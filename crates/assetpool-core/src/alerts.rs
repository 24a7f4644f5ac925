//! Alerts on suspicious use: the rules, their settings, and how a trigger
//! becomes a stored alert with its webhook deliveries.
//!
//! Hot paths call [`Alerts::trigger`], which never waits: a trigger is
//! dropped if the same rule and subject were queued in the last
//! [`LOCAL_DEDUP`] (storage would fold it into the same episode anyway), and
//! otherwise queued for the server's alert task, which calls
//! [`Alerts::raise`]. Storage folds repeated triggers of one rule and subject
//! into one alert per episode ([`AlertSettings::episode_window`]); only a new
//! alert queues webhook deliveries, in the same transaction (the outbox).

use crate::ids::{self, AlertId, KeyId};
use crate::store::{AlertRecord, NewAlert, NewDelivery, RaisedAlert, Store};
use crate::webhook_target::WebhookTargets;
use crate::ServiceError;
use assetpool_wire::{AlertResponse, AlertWebhookPayload};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;

/// A trigger of the same rule and subject within this time is not queued again.
pub const LOCAL_DEDUP: std::time::Duration = std::time::Duration::from_secs(60);
/// Triggers waiting for the alert task; beyond, new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 1024;
const MAX_RECENT: usize = 10_000;

/// The rules. Each is on unless disabled in [`AlertSettings::disabled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertRule {
    /// Failed logins through one key (per hour) or on one account above a threshold.
    FailedLogins,
    /// A revoked key was presented.
    RevokedKeyUsed,
    /// An expired key (or one past its rotation grace) was presented.
    ExpiredKeyUsed,
    /// A key was used from a network (/24, /48) it had not used in 30 days.
    NewNetwork,
    /// A key's hourly request count far above its own hourly median.
    RateSpike,
    /// A key of another environment was presented.
    WrongEnvironment,
    /// A refresh token was presented again after it was spent.
    RefreshTokenReused,
    /// A key expires within 14 days, then within 1 day.
    KeyExpiring,
    /// A key was reported as leaked.
    KeyLeaked,
    /// A key was presented from a client address outside its allow-list.
    AddressNotAllowed,
}

impl AlertRule {
    /// Every rule.
    pub const ALL: [AlertRule; 10] = [
        AlertRule::FailedLogins,
        AlertRule::RevokedKeyUsed,
        AlertRule::ExpiredKeyUsed,
        AlertRule::NewNetwork,
        AlertRule::RateSpike,
        AlertRule::WrongEnvironment,
        AlertRule::RefreshTokenReused,
        AlertRule::KeyExpiring,
        AlertRule::KeyLeaked,
        AlertRule::AddressNotAllowed,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::FailedLogins => "failed_logins",
            AlertRule::RevokedKeyUsed => "revoked_key_used",
            AlertRule::ExpiredKeyUsed => "expired_key_used",
            AlertRule::NewNetwork => "new_network",
            AlertRule::RateSpike => "rate_spike",
            AlertRule::WrongEnvironment => "wrong_environment",
            AlertRule::RefreshTokenReused => "refresh_token_reused",
            AlertRule::KeyExpiring => "key_expiring",
            AlertRule::KeyLeaked => "key_leaked",
            AlertRule::AddressNotAllowed => "address_not_allowed",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        AlertRule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == text)
    }
}

impl std::fmt::Display for AlertRule {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Settings of the rules and of webhook delivery.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Rules switched off.
    pub disabled: Vec<AlertRule>,
    /// Failed logins through one key within one hour that raise `failed_logins`.
    pub failed_logins_per_key: u64,
    /// Failed logins on one account (its throttle counter) that raise `failed_logins`.
    pub failed_logins_per_account: u32,
    /// A network unused by a key for this long counts as new.
    pub new_network_after: Duration,
    /// `rate_spike` when an hour's requests exceed this many times the key's hourly median...
    pub rate_spike_factor: u64,
    /// ...and at least this many requests.
    pub rate_spike_min_requests: u64,
    /// Repeated triggers of one rule and subject within this time of the
    /// previous one update the same (unacknowledged) alert.
    pub episode_window: Duration,
    /// Warnings before a key expires, longest first.
    pub expiry_warnings: Vec<Duration>,
    /// Operators' webhook URLs (`--alert-webhook`).
    pub webhooks: Vec<String>,
    /// Where owner webhooks (set through the admin API or `keys update
    /// --webhook`) may point: public addresses only unless
    /// `--allow-private-webhooks`. Operators' own webhooks are not held to it.
    pub owner_webhook_targets: WebhookTargets,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            disabled: Vec::new(),
            failed_logins_per_key: 20,
            failed_logins_per_account: 20,
            new_network_after: Duration::days(30),
            rate_spike_factor: 10,
            rate_spike_min_requests: 100,
            episode_window: Duration::hours(1),
            expiry_warnings: vec![Duration::days(14), Duration::days(1)],
            webhooks: Vec::new(),
            owner_webhook_targets: WebhookTargets::default(),
        }
    }
}

/// Something that may deserve an alert.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The rule.
    pub rule: AlertRule,
    /// The key concerned.
    pub api_key_id: Option<KeyId>,
    /// The account concerned.
    pub account: Option<String>,
    /// Distinguishes episodes of one rule and key (e.g. `14d` and `1d` expiry warnings).
    pub stage: Option<String>,
    /// Evidence, a JSON object; never a secret.
    pub evidence: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Start of the episode this trigger may belong to; by default
    /// [`AlertSettings::episode_window`] before `at`.
    pub episode_since: Option<DateTime<Utc>>,
}

impl Trigger {
    /// A trigger about a key.
    pub fn for_key(
        rule: AlertRule,
        key_id: &KeyId,
        evidence: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Self {
        Trigger {
            rule,
            api_key_id: Some(key_id.clone()),
            account: None,
            stage: None,
            evidence,
            at,
            episode_since: None,
        }
    }

    /// What the episode is about: `key:<id>`, else `account:<email>`, plus the stage.
    pub fn subject(&self) -> String {
        let base = match (&self.api_key_id, &self.account) {
            (Some(key), _) => format!("key:{key}"),
            (None, Some(account)) => format!("account:{account}"),
            (None, None) => "service".to_owned(),
        };
        match &self.stage {
            Some(stage) => format!("{base}:{stage}"),
            None => base,
        }
    }
}

/// Alert raising for one server.
#[derive(Debug)]
pub struct Alerts {
    settings: AlertSettings,
    sender: mpsc::Sender<Trigger>,
    receiver: Mutex<Option<mpsc::Receiver<Trigger>>>,
    recent: Mutex<HashMap<(AlertRule, String), Instant>>,
    dropped: AtomicU64,
}

impl Alerts {
    /// Alerts with `settings`.
    pub fn new(settings: AlertSettings) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Alerts {
            settings,
            sender,
            receiver: Mutex::new(Some(receiver)),
            recent: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AlertSettings {
        &self.settings
    }

    /// Whether `rule` is on.
    pub fn enabled(&self, rule: AlertRule) -> bool {
        !self.settings.disabled.contains(&rule)
    }

    /// Triggers dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a trigger without waiting (see the module documentation).
    pub fn trigger(&self, trigger: Trigger) {
        if !self.enabled(trigger.rule) {
            return;
        }
        let key = (trigger.rule, trigger.subject());
        let now = Instant::now();
        if let Ok(mut recent) = self.recent.lock() {
            if recent
                .get(&key)
                .is_some_and(|queued| now.duration_since(*queued) < LOCAL_DEDUP)
            {
                return;
            }
            if recent.len() >= MAX_RECENT {
                recent.retain(|_, queued| now.duration_since(*queued) < LOCAL_DEDUP);
            }
            recent.insert(key, now);
        }
        if self.sender.try_send(trigger).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("alert queue full: a trigger was dropped");
        }
    }

    /// The queue's receiving end, for the alert task (only the first caller gets it).
    pub fn take_queue(&self) -> Option<mpsc::Receiver<Trigger>> {
        self.receiver
            .lock()
            .ok()
            .and_then(|mut receiver| receiver.take())
    }

    /// Stores the alert of `trigger` now: updates its open episode or creates
    /// a new alert with one delivery per operator webhook and, for a key
    /// with an owner webhook, one to it.
    pub async fn raise(
        &self,
        store: &dyn Store,
        trigger: Trigger,
    ) -> Result<RaisedAlert, ServiceError> {
        let id = AlertId::new();
        let subject = trigger.subject();
        let mut destinations: Vec<(String, String)> = self
            .settings
            .webhooks
            .iter()
            .map(|url| (url.clone(), "global".to_owned()))
            .collect();
        if let Some(key_id) = &trigger.api_key_id {
            if let Some(webhook) = store.key_webhook(key_id).await? {
                destinations.push((webhook.url, format!("key:{key_id}")));
            }
        }
        let evidence = trigger.evidence.to_string();
        let first = AlertResponse {
            id: id.to_string(),
            rule: trigger.rule.as_str().to_owned(),
            subject: subject.clone(),
            api_key: trigger.api_key_id.as_ref().map(KeyId::to_string),
            account: trigger.account.clone(),
            evidence: trigger.evidence.clone(),
            first_seen_at: trigger.at,
            last_seen_at: trigger.at,
            occurrences: 1,
            acknowledged_at: None,
            acknowledged_by: None,
        };
        let mut deliveries = Vec::with_capacity(destinations.len());
        for (url, secret_ref) in destinations {
            let delivery_id = ids::new_delivery_id();
            let payload = AlertWebhookPayload {
                kind: "alert.raised".to_owned(),
                delivery_id: delivery_id.clone(),
                alert: first.clone(),
            };
            let payload = serde_json::to_string(&payload)
                .map_err(|error| ServiceError::Internal(error.to_string()))?;
            deliveries.push(NewDelivery {
                id: delivery_id,
                url,
                secret_ref,
                payload,
            });
        }
        let alert = NewAlert {
            id,
            rule: trigger.rule.as_str().to_owned(),
            subject,
            api_key_id: trigger.api_key_id,
            account: trigger.account,
            evidence,
            at: trigger.at,
            episode_since: trigger
                .episode_since
                .unwrap_or(trigger.at - self.settings.episode_window),
            deliveries,
        };
        let raised = store.raise_alert(&alert).await?;
        if raised.created {
            tracing::warn!(
                alert = %raised.alert.id,
                rule = %raised.alert.rule,
                subject = %raised.alert.subject,
                "alert raised"
            );
        }
        Ok(raised)
    }
}

/// The wire form of a stored alert.
pub fn alert_response(alert: &AlertRecord) -> AlertResponse {
    AlertResponse {
        id: alert.id.to_string(),
        rule: alert.rule.clone(),
        subject: alert.subject.clone(),
        api_key: alert.api_key_id.as_ref().map(KeyId::to_string),
        account: alert.account.clone(),
        evidence: serde_json::from_str(&alert.evidence)
            .unwrap_or_else(|_| serde_json::Value::Object(serde_json::Map::new())),
        first_seen_at: alert.first_seen,
        last_seen_at: alert.last_seen,
        occurrences: alert.occurrences,
        acknowledged_at: alert.acked_at,
        acknowledged_by: alert.acked_by.clone(),
    }
}

/// The network of an address as the `new_network` rule sees it: the /24 of
/// IPv4, the /48 of IPv6 (an IPv4-mapped IPv6 address counts as IPv4).
pub fn network_of(address: std::net::IpAddr) -> String {
    use std::net::IpAddr;
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let network =
                std::net::Ipv6Addr::new(segments[0], segments[1], segments[2], 0, 0, 0, 0, 0);
            format!("{network}/48")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip() {
        for rule in AlertRule::ALL {
            assert_eq!(AlertRule::parse(rule.as_str()), Some(rule));
        }
        assert_eq!(AlertRule::parse("nope"), None);
    }

    #[test]
    fn networks() {
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("::ffff:203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2::5".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn subjects() {
        let now = Utc::now();
        let mut trigger = Trigger::for_key(
            AlertRule::KeyExpiring,
            &"key_1".into(),
            serde_json::json!({}),
            now,
        );
        assert_eq!(trigger.subject(), "key:key_1");
        trigger.stage = Some("14d".into());
        assert_eq!(trigger.subject(), "key:key_1:14d");
        trigger.api_key_id = None;
        trigger.account = Some("a@example.com".into());
        assert_eq!(trigger.subject(), "account:a@example.com:14d");
    }

    #[tokio::test]
    async fn triggers_are_deduplicated_and_disabled_rules_ignored() {
        let alerts = Alerts::new(AlertSettings {
            disabled: vec![AlertRule::RateSpike],
            ..AlertSettings::default()
        });
        let mut queue = alerts.take_queue().unwrap();
        assert!(alerts.take_queue().is_none());
        let now = Utc::now();
        for _ in 0..5 {
            alerts.trigger(Trigger::for_key(
                AlertRule::RevokedKeyUsed,
                &"key_1".into(),
                serde_json::json!({}),
                now,
            ));
        }
        alerts.trigger(Trigger::for_key(
            AlertRule::RevokedKeyUsed,
            &"key_2".into(),
            serde_json::json!({}),
            now,
        ));
        alerts.trigger(Trigger::for_key(
            AlertRule::RateSpike,
            &"key_1".into(),
            serde_json::json!({}),
            now,
        ));
        let mut received = Vec::new();
        while let Ok(trigger) = queue.try_recv() {
            received.push(trigger.subject());
        }
        assert_eq!(received, vec!["key:key_1", "key:key_2"]);
    }
}
