//! Moving all durable state between databases: [`TransferStore`].

use super::StoreResult;
use crate::export::ExportRecord;
use async_trait::async_trait;

/// Moving all durable state between databases (`export`, `import`).
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// All durable state, in export order: settings, applications, API keys,
    /// users, signing keys, sessions, refresh tokens; each kind oldest first.
    /// Read from one consistent snapshot. The change feed is not exported.
    async fn export_records(&self) -> StoreResult<Vec<ExportRecord>>;
    /// Writes exported records into this store in one transaction (in
    /// [`crate::export::import_order`], whatever their order in `records`).
    /// Fails with `Conflict(`[`super::DATABASE_NOT_EMPTY`]`)`, writing nothing, if
    /// any application, API key, user, session or signing key exists; settings
    /// are upserted. Appends nothing to the change feed: servers started
    /// afterwards load everything from storage.
    async fn import_records(&self, records: &[ExportRecord]) -> StoreResult<()>;
}
