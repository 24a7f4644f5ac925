//! The [`Store`] implementation on SQLite: the store itself, opening and
//! closing it, and a thin trait implementation that delegates each method to
//! the module holding its SQL (`keys`, `users`, `sessions`, `signing_keys`,
//! `changes`, `transfer`, `usage`, `alerts`, `webhooks`, `audit`).

use crate::files;
use crate::rows::map_error;
use assetpool_core::export::ExportRecord;
use assetpool_core::store::{
    AlertRecord, ApiKeyRecord, ApiKeyUpdate, ApplicationRecord, AttemptAdmission, AuditRecord,
    ChangeRecord, KeyUsage, KeyWebhook, LoginAttempt, NewAlert, NewAuditEntry, Page, QuotaDelta,
    RaisedAlert, RefreshOutcome, RevokedSession, SessionOpening, SigningKeyRecord,
    SpendRefreshToken, Store, StoreError, StoreResult, ThrottleDecision, ThrottleEntry, UsageBatch,
    UsageResolution, UsageWritten, UserRecord, WebhookDelivery,
};
use assetpool_core::{Environment, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

const MAX_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// One connection of its own for the change feed and the signing keys,
    /// so that a busy `pool` (a flood of unknown keys, slow queries) never
    /// keeps a server from learning about revocations.
    pub(crate) feed: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its folder if missing) and migrates the
    /// database at `url` (`sqlite://path/to/file.db`). A folder or file created
    /// here is private to the user, whatever the umask (see `files.rs`).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad SQLite URL: {error}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_path_buf();
        if !files::is_in_memory(url) {
            files::prepare_database_file(&path)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Other(format!("migration failed: {error}")))?;
        // An in-memory database exists once per connection: it has no second one.
        let feed = if files::is_in_memory(url) {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|error| {
                    StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
                })?
        };
        Ok(SqliteStore { pool, feed })
    }

    /// The database file `url` names, or `None` for an in-memory database.
    pub fn database_file(url: &str) -> StoreResult<Option<PathBuf>> {
        if files::is_in_memory(url) {
            return Ok(None);
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Other(format!("bad SQLite URL: {error}")))?;
        Ok(Some(options.get_filename().to_path_buf()))
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
        self.feed.close().await;
    }

    pub(crate) async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)
    }

    /// A read transaction: one snapshot from its first read on (WAL).
    pub(crate) async fn read(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin().await.map_err(map_error)
    }

    /// Checks that the database answers.
    async fn check_connection(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.check_connection().await
    }

    async fn issuer_or_record(&self, candidate: &str) -> StoreResult<String> {
        self.fetch_or_record_issuer(candidate).await
    }

    async fn record_token_ttl(&self, ttl_seconds: i64) -> StoreResult<i64> {
        self.raise_token_ttl(ttl_seconds).await
    }

    async fn longest_token_ttl(&self) -> StoreResult<i64> {
        self.fetch_longest_token_ttl().await
    }

    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()> {
        self.insert_application(application).await
    }

    async fn application(&self, id: &str) -> StoreResult<Option<ApplicationRecord>> {
        self.fetch_application(id).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.add_api_key(key).await
    }

    async fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>> {
        self.fetch_api_key_by_hash(hash).await
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.fetch_api_key(id).await
    }

    async fn list_api_keys(
        &self,
        environment: Option<Environment>,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        self.fetch_api_keys(environment).await
    }

    async fn api_keys_expiring(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        self.fetch_api_keys_expiring(after, until).await
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        self.revoke_key(id, reason, now).await
    }

    async fn rotate_api_key(
        &self,
        id: &str,
        successor: &ApiKeyRecord,
        grace_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        self.rotate_key(id, successor, grace_until, now).await
    }

    async fn record_api_key_use(&self, uses: &[(String, DateTime<Utc>)]) -> StoreResult<()> {
        self.record_key_uses(uses).await
    }

    async fn update_api_key(
        &self,
        id: &str,
        update: &ApiKeyUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        self.update_key(id, update, now).await
    }

    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<Vec<(QuotaDelta, u64)>> {
        self.add_quota(deltas).await
    }

    async fn prune_quota_usage(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_quota(before).await
    }

    async fn count_login_attempt(
        &self,
        attempt: &LoginAttempt,
        decide: ThrottleDecision<'_>,
    ) -> StoreResult<AttemptAdmission> {
        self.count_attempt(attempt, decide).await
    }

    async fn settle_login_failure(&self, attempt: &LoginAttempt) -> StoreResult<()> {
        self.settle_failure(attempt).await
    }

    async fn login_throttles(&self, account: Option<&str>) -> StoreResult<Vec<ThrottleEntry>> {
        self.fetch_throttles(account).await
    }

    async fn clear_login_throttle(&self, account: &str) -> StoreResult<u64> {
        self.clear_throttle(account).await
    }

    async fn prune_login_throttle(
        &self,
        failures_before: DateTime<Utc>,
        known_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.prune_throttle(failures_before, known_before).await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.insert_user(user).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.fetch_user_by_email(email).await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        self.fetch_users().await
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.replace_password(user_id, password_hash, now).await
    }

    async fn upgrade_password_hash(
        &self,
        user_id: &str,
        password_version: i64,
        new_hash: &str,
    ) -> StoreResult<bool> {
        self.update_password_hash(user_id, password_version, new_hash)
            .await
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.update_user_disabled(user_id, disabled, now).await
    }

    async fn open_session(&self, opening: &SessionOpening) -> StoreResult<bool> {
        self.insert_session(opening).await
    }

    async fn spend_refresh_token(&self, spend: &SpendRefreshToken) -> StoreResult<RefreshOutcome> {
        self.spend_token(spend).await
    }

    async fn revoke_session(&self, session_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.end_session(session_id, now).await
    }

    async fn revoked_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<RevokedSession>> {
        self.fetch_revoked_sessions(now).await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.fetch_signing_keys().await
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_until: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.replace_signing_key(key, retire_until).await
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        self.add_first_signing_key(key).await
    }

    async fn latest_change_id(&self) -> StoreResult<i64> {
        self.fetch_latest_change_id().await
    }

    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<ChangeRecord>> {
        self.fetch_changes_since(after, limit).await
    }

    async fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.delete_changes_before(before).await
    }

    async fn export_records(&self) -> StoreResult<Vec<ExportRecord>> {
        self.export_all().await
    }

    async fn import_records(&self, records: &[ExportRecord]) -> StoreResult<()> {
        self.import_all(records).await
    }

    async fn add_key_usage(&self, batch: &UsageBatch) -> StoreResult<UsageWritten> {
        self.add_usage(batch).await
    }

    async fn key_usage(
        &self,
        key_id: &str,
        resolution: UsageResolution,
        since: DateTime<Utc>,
    ) -> StoreResult<KeyUsage> {
        self.fetch_key_usage(key_id, resolution, since).await
    }

    async fn prune_key_usage(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_usage(now).await
    }

    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<RaisedAlert> {
        self.add_alert(alert).await
    }

    async fn list_alerts(
        &self,
        since: Option<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<AlertRecord>> {
        self.fetch_alerts(since, page).await
    }

    async fn alert(&self, id: &str) -> StoreResult<Option<AlertRecord>> {
        self.fetch_alert(id).await
    }

    async fn ack_alert(&self, id: &str, by: &str, now: DateTime<Utc>) -> StoreResult<AlertRecord> {
        self.acknowledge_alert(id, by, now).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        self.claim_deliveries(now, lease_until, limit).await
    }

    async fn complete_webhook_delivery(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.complete_delivery(id, now).await
    }

    async fn fail_webhook_delivery(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.fail_delivery(id, error, retry_at).await
    }

    async fn webhook_backlog(&self) -> StoreResult<u64> {
        self.count_backlog().await
    }

    async fn set_key_webhook(&self, key_id: &str, webhook: Option<&KeyWebhook>) -> StoreResult<()> {
        self.replace_key_webhook(key_id, webhook).await
    }

    async fn key_webhook(&self, key_id: &str) -> StoreResult<Option<KeyWebhook>> {
        self.fetch_key_webhook(key_id).await
    }

    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64> {
        self.add_audit(entry).await
    }

    async fn list_audit(&self, page: Page) -> StoreResult<Vec<AuditRecord>> {
        self.fetch_audit(page).await
    }
}
