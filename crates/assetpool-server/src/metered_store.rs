//! [`MeteredStore`]: a [`Store`] decorator that times every storage operation
//! (`assetpool_storage_operation_duration_seconds{operation}`) and counts its
//! failures (`assetpool_storage_errors_total{operation}`). The operation label
//! is the trait method's name: a fixed, bounded set.

use crate::metrics::Metrics;

use assetpool_core::ids::{AlertId, ApplicationId, KeyId, SessionId, SigningKeyId, UserId};
use assetpool_core::store::prelude::*;
use assetpool_core::store::{
    AlertRecord, ApiKeyRecord, ApiKeyUpdate, ApplicationRecord, ApplicationUpdate,
    ApplicationWithMembers, AttemptAdmission, AuditChainHead, AuditLink, AuditRecord, ChangeRecord,
    ConsoleSession, ConsoleSessionOpening, CreationPage, DeliveryStatus, ExportSink, ImportSource,
    KeyFilter, KeyUsage, KeyWebhook, LoginAttempt, NewAlert, NewAuditEntry, Page, PendingAudit,
    QuotaDelta, RaisedAlert, RefreshOutcome, ResealedSigningKey, RevokedSession, SessionOpening,
    SigningKeyRecord, SpendRefreshToken, ThrottleDecision, ThrottleEntry, UsageBatch, UsageBucket,
    UsageResolution, UsageWritten, UserRecord, WebhookDelivery,
};
use assetpool_core::{ApplicationRole, Environment, ScopeSet, SecretHash, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The metric handles of one operation, created once.
#[derive(Clone)]
struct Operation {
    seconds: Histogram,
    errors: Counter,
}

impl Operation {
    fn new(metrics: &Metrics, name: &'static str) -> Self {
        let (seconds, errors) = metrics.storage_operation(name);
        Operation { seconds, errors }
    }

    /// Runs `operation`, recording its time and whether storage failed. "Not
    /// found" and conflicts are answers, not failures: they are not counted.
    async fn time<T>(&self, operation: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = Instant::now();
        let result = operation.await;
        self.seconds.observe(started.elapsed().as_secs_f64());
        if matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::Other(_))
        ) {
            self.errors.inc();
        }
        result
    }
}

/// Declares every timed operation once, grouped by storage trait: the
/// handles (one field per operation), the list of names, and one delegating
/// impl per trait (with its untimed operations, if any, written out).
macro_rules! metered_operations {
    ($(
        $trait:ident {
            $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*
            $(untimed { $($untimed:tt)* })?
        }
    )*) => {
        /// The handles of every operation.
        struct Operations {
            $($($name: Operation,)*)*
        }

        impl Operations {
            fn new(metrics: &Metrics) -> Self {
                Operations {
                    $($($name: Operation::new(metrics, stringify!($name)),)*)*
                }
            }
        }

        /// The `operation` label values: the timed storage operations.
        pub const OPERATIONS: &[&str] = &[$($(stringify!($name)),*),*];

        $(
            #[async_trait]
            impl $trait for MeteredStore {
                $(
                    async fn $name(&self $(, $arg: $ty)*) -> $ret {
                        self.operations
                            .$name
                            .time(self.inner.$name($($arg),*))
                            .await
                    }
                )*
                $($($untimed)*)?
            }
        )*
    };
}

/// A [`Store`] that times and delegates every operation to `inner`.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    operations: Operations,
}

impl std::fmt::Debug for MeteredStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MeteredStore")
            .finish_non_exhaustive()
    }
}

impl MeteredStore {
    /// Wraps `inner`, registering the handles of every operation in `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: &Metrics) -> Self {
        MeteredStore {
            inner,
            operations: Operations::new(metrics),
        }
    }

    /// The store behind the decorator.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

metered_operations! {
    ChangeFeed {
        fn ping(&self) -> StoreResult<()>;
        fn issuer_or_record(&self, candidate: &str) -> StoreResult<String>;
        fn record_token_ttl(&self, ttl_seconds: i64) -> StoreResult<i64>;
        fn longest_token_ttl(&self) -> StoreResult<i64>;
        fn latest_change_id(&self) -> StoreResult<i64>;
        fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<ChangeRecord>>;
        fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64>;
        fn changes_pruned_through(&self) -> StoreResult<i64>;
        untimed {
                /// Not timed: it waits on purpose.
                async fn wait_for_changes(&self, timeout: Duration) {
                    self.inner.wait_for_changes(timeout).await;
                }
        }
    }
    KeyStore {
        fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()>;
        fn application(&self, id: &ApplicationId) -> StoreResult<Option<ApplicationRecord>>;
        fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
        fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>>;
        fn api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKeyRecord>>;
        fn list_api_keys(&self, environment: Option<Environment>, page: &CreationPage) -> StoreResult<Vec<ApiKeyRecord>>;
        fn list_application_api_keys(&self, application_id: &ApplicationId, page: &CreationPage) -> StoreResult<Vec<ApiKeyRecord>>;
        fn filter_api_keys(&self, filter: &KeyFilter, now: DateTime<Utc>, page: &CreationPage) -> StoreResult<Vec<ApiKeyRecord>>;
        fn api_keys_expiring(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> StoreResult<Vec<ApiKeyRecord>>;
        fn revoke_api_key(&self, id: &KeyId, reason: Option<&str>, now: DateTime<Utc>) -> StoreResult<ApiKeyRecord>;
        fn rotate_api_key(&self, id: &KeyId, successor: &ApiKeyRecord, grace_until: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<ApiKeyRecord>;
        fn record_api_key_use(&self, uses: &[(KeyId, DateTime<Utc>)]) -> StoreResult<()>;
        fn update_api_key(&self, id: &KeyId, update: &ApiKeyUpdate, now: DateTime<Utc>) -> StoreResult<ApiKeyRecord>;
        fn set_api_key_disabled(&self, id: &KeyId, disabled: bool, now: DateTime<Utc>) -> StoreResult<ApiKeyRecord>;
        fn disabled_api_keys(&self) -> StoreResult<Vec<KeyId>>;
    }
    UsageStore {
        fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<Vec<(QuotaDelta, u64)>>;
        fn prune_quota_usage(&self, before: DateTime<Utc>) -> StoreResult<u64>;
        fn quota_usage(&self, key_id: &KeyId, period_start: DateTime<Utc>) -> StoreResult<u64>;
        fn add_key_usage(&self, batch: &UsageBatch) -> StoreResult<UsageWritten>;
        fn key_usage(&self, key_id: &KeyId, resolution: UsageResolution, since: DateTime<Utc>) -> StoreResult<KeyUsage>;
        fn prune_key_usage(&self, now: DateTime<Utc>) -> StoreResult<u64>;
        fn usage_totals(&self, resolution: UsageResolution, since: DateTime<Utc>) -> StoreResult<Vec<UsageBucket>>;
    }
    ThrottleStore {
        fn count_login_attempt(&self, attempt: &LoginAttempt, decide: ThrottleDecision<'_>) -> StoreResult<AttemptAdmission>;
        fn settle_login_failure(&self, attempt: &LoginAttempt) -> StoreResult<()>;
        fn settle_login_refused(&self, attempt: &LoginAttempt) -> StoreResult<()>;
        fn login_throttles(&self, account: Option<&str>) -> StoreResult<Vec<ThrottleEntry>>;
        fn clear_login_throttle(&self, account: &str) -> StoreResult<u64>;
        fn prune_login_throttle(&self, failures_before: DateTime<Utc>, known_before: DateTime<Utc>) -> StoreResult<u64>;
    }
    UserStore {
        fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
        fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
        fn list_users(&self, page: &CreationPage) -> StoreResult<Vec<UserRecord>>;
        fn set_password(&self, user_id: &UserId, password_hash: &str, now: DateTime<Utc>) -> StoreResult<()>;
        fn upgrade_password_hash(&self, user_id: &UserId, password_version: i64, new_hash: &str) -> StoreResult<bool>;
        fn set_user_disabled(&self, user_id: &UserId, disabled: bool, now: DateTime<Utc>) -> StoreResult<()>;
        fn set_user_scopes(&self, user_id: &UserId, scopes: Option<&ScopeSet>, now: DateTime<Utc>) -> StoreResult<(UserRecord, u64)>;
    }
    SessionStore {
        fn open_session(&self, opening: &SessionOpening) -> StoreResult<bool>;
        fn spend_refresh_token(&self, spend: &SpendRefreshToken) -> StoreResult<RefreshOutcome>;
        fn revoke_session(&self, session_id: &SessionId, now: DateTime<Utc>) -> StoreResult<bool>;
        fn revoked_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<RevokedSession>>;
    }
    SigningKeyStore {
        fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
        fn rotate_signing_key(&self, key: &SigningKeyRecord, retire_until: DateTime<Utc>) -> StoreResult<()>;
        fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
        fn revoke_signing_key(&self, kid: &SigningKeyId, now: DateTime<Utc>) -> StoreResult<SigningKeyRecord>;
        untimed {
                /// Not timed: the `signing-keys seal` migration, run by the command line.
                async fn reseal_signing_keys(&self, keys: &[ResealedSigningKey]) -> StoreResult<()> {
                    self.inner.reseal_signing_keys(keys).await
                }
        }
    }
    TransferStore {
        fn export_to(&self, sink: &mut dyn ExportSink) -> StoreResult<()>;
        fn import_from(&self, source: &mut dyn ImportSource) -> StoreResult<()>;
    }
    AlertStore {
        fn raise_alert(&self, alert: &NewAlert) -> StoreResult<RaisedAlert>;
        fn list_alerts(&self, since: Option<DateTime<Utc>>, page: Page) -> StoreResult<Vec<AlertRecord>>;
        fn alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>>;
        fn ack_alert(&self, id: &AlertId, by: &str, now: DateTime<Utc>) -> StoreResult<AlertRecord>;
        fn claim_webhook_deliveries(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
        fn complete_webhook_delivery(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;
        fn fail_webhook_delivery(&self, id: &str, error: &str, retry_at: Option<DateTime<Utc>>) -> StoreResult<()>;
        fn webhook_backlog(&self) -> StoreResult<u64>;
        fn set_key_webhook(&self, key_id: &KeyId, webhook: Option<&KeyWebhook>) -> StoreResult<()>;
        fn key_webhook(&self, key_id: &KeyId) -> StoreResult<Option<KeyWebhook>>;
        fn application_alerts(&self, application_id: &ApplicationId, page: Page) -> StoreResult<Vec<AlertRecord>>;
        fn application_key_webhooks(&self, application_id: &ApplicationId, limit: u32) -> StoreResult<Vec<(KeyId, String)>>;
        fn key_webhook_deliveries(&self, key_id: &KeyId, limit: u32) -> StoreResult<Vec<DeliveryStatus>>;
    }
    ApplicationStore {
        fn list_applications(&self, page: &CreationPage) -> StoreResult<Vec<ApplicationWithMembers>>;
        fn application_with_members(&self, id: &ApplicationId) -> StoreResult<Option<ApplicationWithMembers>>;
        fn update_application(&self, id: &ApplicationId, update: &ApplicationUpdate, now: DateTime<Utc>) -> StoreResult<ApplicationWithMembers>;
        fn set_application_member(&self, id: &ApplicationId, user_id: &UserId, role: ApplicationRole, now: DateTime<Utc>) -> StoreResult<ApplicationWithMembers>;
        fn remove_application_member(&self, id: &ApplicationId, user_id: &UserId, now: DateTime<Utc>) -> StoreResult<ApplicationWithMembers>;
        fn application_admits(&self, id: &ApplicationId, account: &str) -> StoreResult<bool>;
    }
    ConsoleSessionStore {
        fn open_console_session(&self, opening: &ConsoleSessionOpening) -> StoreResult<bool>;
        fn console_session(&self, secret_hash: &SecretHash) -> StoreResult<Option<ConsoleSession>>;
        fn touch_console_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()>;
        fn end_console_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<bool>;
        fn prune_console_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    }
    AuditLog {
        fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64>;
        fn list_audit(&self, page: Page) -> StoreResult<Vec<AuditRecord>>;
        fn audit_chain_head(&self) -> StoreResult<AuditChainHead>;
        fn audit_links(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditLink>>;
        untimed {
                /// The audited store is the inner one's: admin changes are
                /// not timed.
                fn audited(&self, pending: Arc<PendingAudit>) -> Arc<dyn Store> {
                    self.inner.audited(pending)
                }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use assetpool_store_sqlite::SqliteStore;
    use std::collections::HashSet;

    async fn metered() -> (tempfile::TempDir, Arc<Metrics>, MeteredStore) {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", directory.path().display());
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let metrics = Arc::new(Metrics::default());
        let store = MeteredStore::new(inner, &metrics);
        (directory, metrics, store)
    }

    fn count_of(text: &str, operation: &str) -> u64 {
        let prefix = format!(
            "assetpool_storage_operation_duration_seconds_count{{operation=\"{operation}\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no count for {operation}: {text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn operation_names_are_unique_and_bounded() {
        let names: HashSet<&str> = OPERATIONS.iter().copied().collect();
        assert_eq!(names.len(), OPERATIONS.len());
        // Every monitoring method (default bodies in the trait) is delegated.
        for name in [
            "add_key_usage",
            "key_usage",
            "prune_key_usage",
            "raise_alert",
            "list_alerts",
            "alert",
            "ack_alert",
            "claim_webhook_deliveries",
            "complete_webhook_delivery",
            "fail_webhook_delivery",
            "webhook_backlog",
            "set_key_webhook",
            "key_webhook",
            "append_audit",
            "list_audit",
        ] {
            assert!(names.contains(name), "{name} is not metered");
        }
        assert!(!names.contains("wait_for_changes"));
    }

    #[tokio::test]
    async fn operations_are_timed_and_delegated() {
        let (_directory, metrics, store) = metered().await;
        // Every operation's series exists from the start, at zero.
        let text = metrics.encode();
        for operation in OPERATIONS {
            assert_eq!(count_of(&text, operation), 0);
        }
        store.ping().await.unwrap();
        store.ping().await.unwrap();
        let missing = store
            .api_key_by_hash(&SecretHash::of("no such key"))
            .await
            .unwrap();
        assert!(missing.is_none());
        assert_eq!(
            store.list_users(&CreationPage::all()).await.unwrap().len(),
            0
        );
        store.wait_for_changes(Duration::from_millis(1)).await;
        let text = metrics.encode();
        assert_eq!(count_of(&text, "ping"), 2);
        assert_eq!(count_of(&text, "api_key_by_hash"), 1);
        assert_eq!(count_of(&text, "list_users"), 1);
        assert!(!text.contains("wait_for_changes"));
        // "Not found" is an answer, not a storage error.
        assert!(store
            .api_key(&"key_missing".into())
            .await
            .unwrap()
            .is_none());
        assert!(
            text.contains("assetpool_storage_errors_total{operation=\"api_key\"} 0"),
            "{text}"
        );
    }
}
