//! Alerts (one open episode per rule and subject) and the webhook outbox:
//! the records and [`AlertStore`].

use super::{Page, StoreResult};
use crate::ids::{AlertId, ApplicationId, KeyId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A webhook destination for an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Delivery id (`dlv_...`), sent to the receiver so it can drop duplicates.
    pub id: String,
    /// Destination URL.
    pub url: String,
    /// Which secret signs it: `global` (the server's `--alert-webhook-secret`)
    /// or `key:<key id>` (that key's owner webhook secret).
    pub secret_ref: String,
    /// The JSON body, fixed at creation so every attempt sends the same bytes.
    pub payload: String,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// Id to use if a new alert is created (`alr_...`).
    pub id: AlertId,
    /// Rule name (e.g. `revoked_key_used`).
    pub rule: String,
    /// What the episode is about, e.g. `key:<id>` or `account:<email>`; one
    /// open alert per (rule, subject).
    pub subject: String,
    /// The key concerned, if any.
    pub api_key_id: Option<KeyId>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Evidence as a JSON object (text).
    pub evidence: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// An unacknowledged alert of the same rule and subject last seen at or
    /// after this time is updated instead of a new one being created.
    pub episode_since: DateTime<Utc>,
    /// Webhook deliveries to queue, only if a new alert is created.
    pub deliveries: Vec<NewDelivery>,
}

impl NewAlert {
    /// Whether this trigger belongs to the episode of `open`, the latest
    /// unacknowledged alert of its rule and subject: it does when that alert
    /// was last seen at or after [`NewAlert::episode_since`]. Then `open` is
    /// updated; otherwise a new alert (with its deliveries) is created.
    pub fn folds_into(&self, open: &AlertRecord) -> bool {
        open.acked_at.is_none() && open.last_seen >= self.episode_since
    }
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Order of creation (for pagination), increasing.
    pub seq: i64,
    /// Alert id (`alr_...`).
    pub id: AlertId,
    /// Rule name.
    pub rule: String,
    /// Subject of the episode.
    pub subject: String,
    /// The key concerned, if any.
    pub api_key_id: Option<KeyId>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Evidence of the latest trigger, a JSON object (text).
    pub evidence: String,
    /// First trigger.
    pub first_seen: DateTime<Utc>,
    /// Latest trigger.
    pub last_seen: DateTime<Utc>,
    /// Triggers in this episode.
    pub occurrences: u64,
    /// When acknowledged.
    pub acked_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
}

/// Result of [`AlertStore::raise_alert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedAlert {
    /// The alert as stored now.
    pub alert: AlertRecord,
    /// True if a new alert (and its deliveries) was created; false if an
    /// open episode was updated.
    pub created: bool,
}

/// A queued webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Delivery id.
    pub id: String,
    /// The alert it carries.
    pub alert_id: AlertId,
    /// Destination URL.
    pub url: String,
    /// Which secret signs it (see [`NewDelivery::secret_ref`]).
    pub secret_ref: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts made so far (including the one being claimed).
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// A delivery to a key's owner webhook as the console shows it: its state,
/// never its payload or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// Delivery id.
    pub id: String,
    /// The alert it carries.
    pub alert_id: AlertId,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it is (or was) next due.
    pub next_attempt_at: DateTime<Utc>,
    /// When the receiver answered 2xx.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was given up.
    pub given_up_at: Option<DateTime<Utc>>,
    /// The error of the latest failed attempt.
    pub last_error: Option<String>,
}

/// A per-key owner webhook. `Debug` leaves out the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyWebhook {
    /// Destination URL.
    pub url: String,
    /// The signing secret, sealed (see [`crate::KeySealer`]).
    pub sealed_secret: String,
}

impl std::fmt::Debug for KeyWebhook {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyWebhook")
            .field("url", &self.url)
            .field("sealed_secret", &"[redacted]")
            .finish()
    }
}

/// Alerts, one open episode per rule and subject, and the webhook outbox.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Raises an alert: updates the open episode of the same rule and subject
    /// (unacknowledged, last seen at or after `episode_since`: occurrences + 1,
    /// last seen, evidence) or creates a new alert with its deliveries, in one
    /// transaction (concurrent raises of one episode create one alert).
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<RaisedAlert>;
    /// Alerts last seen at or after `since` (all if `None`), newest first (by `seq`).
    async fn list_alerts(
        &self,
        since: Option<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>>;
    /// Finds an alert by id.
    async fn alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>>;
    /// Acknowledges an alert (`NotFound` if unknown; acknowledging twice keeps the first).
    async fn ack_alert(
        &self,
        id: &AlertId,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<AlertRecord>;
    /// Claims up to `limit` deliveries due at `now` (not delivered, not given
    /// up, next attempt at or before `now`): sets their next attempt to
    /// `lease_until` and counts an attempt, so no other server takes them
    /// meanwhile. Oldest first.
    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Marks a delivery delivered.
    async fn complete_webhook_delivery(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    async fn fail_webhook_delivery(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    /// Deliveries neither delivered nor given up.
    async fn webhook_backlog(&self) -> StoreResult<u64>;
    /// Sets (or with `None` removes) a key's owner webhook.
    async fn set_key_webhook(
        &self,
        key_id: &KeyId,
        webhook: Option<&KeyWebhook>,
    ) -> StoreResult<()>;
    /// A key's owner webhook.
    async fn key_webhook(&self, key_id: &KeyId) -> StoreResult<Option<KeyWebhook>>;
    /// Alerts about the keys of application `application_id`, newest first
    /// (by `seq`).
    async fn application_alerts(
        &self,
        application_id: &ApplicationId,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>>;
    /// The owner webhooks of the keys of application `application_id`: key
    /// id and URL (never the secret), in key id order, at most `limit`.
    async fn application_key_webhooks(
        &self,
        application_id: &ApplicationId,
        limit: u32,
    ) -> StoreResult<Vec<(KeyId, String)>>;
    /// The latest `limit` deliveries to key `key_id`'s owner webhook,
    /// newest first.
    async fn key_webhook_deliveries(
        &self,
        key_id: &KeyId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryStatus>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn a_trigger_folds_into_an_open_episode_seen_lately() {
        let new = NewAlert {
            id: "alr_2".into(),
            rule: "failed_logins".into(),
            subject: "account:a".into(),
            api_key_id: None,
            account: Some("a".into()),
            evidence: "{}".into(),
            at: at(100),
            episode_since: at(40),
            deliveries: Vec::new(),
        };
        let open = AlertRecord {
            seq: 1,
            id: "alr_1".into(),
            rule: "failed_logins".into(),
            subject: "account:a".into(),
            api_key_id: None,
            account: Some("a".into()),
            evidence: "{}".into(),
            first_seen: at(0),
            last_seen: at(40),
            occurrences: 3,
            acked_at: None,
            acked_by: None,
        };
        assert!(new.folds_into(&open));
        let quiet = AlertRecord {
            last_seen: at(39),
            ..open.clone()
        };
        assert!(!new.folds_into(&quiet));
        let acknowledged = AlertRecord {
            acked_at: Some(at(50)),
            ..open
        };
        assert!(!new.folds_into(&acknowledged));
    }
}
