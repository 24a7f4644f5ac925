//! Moving all durable state between databases: [`TransferStore`].

use super::StoreResult;
use crate::export::ExportRecord;
use async_trait::async_trait;

/// Where [`TransferStore::export_to`] puts the records, one at a time (so an
/// export of a million keys holds one row in memory, not a million).
pub trait ExportSink: Send {
    /// Takes the next record; an error stops the export.
    fn record(&mut self, record: ExportRecord) -> StoreResult<()>;
}

impl ExportSink for Vec<ExportRecord> {
    fn record(&mut self, record: ExportRecord) -> StoreResult<()> {
        self.push(record);
        Ok(())
    }
}

/// Moving all durable state between databases (`export`, `import`).
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// All durable state, in export order: settings, applications, API keys,
    /// users, application members, signing keys, sessions, refresh tokens;
    /// each kind oldest first. Read from one consistent snapshot, row by row
    /// into `sink`. The change feed is not exported.
    async fn export_to(&self, sink: &mut dyn ExportSink) -> StoreResult<()>;

    /// [`TransferStore::export_to`] into a vector (small databases, tests).
    async fn export_records(&self) -> StoreResult<Vec<ExportRecord>> {
        let mut records = Vec::new();
        self.export_to(&mut records).await?;
        Ok(records)
    }
    /// Writes exported records into this store in one transaction (in
    /// [`crate::export::import_order`], whatever their order in `records`).
    /// Fails with `Conflict(`[`super::DATABASE_NOT_EMPTY`]`)`, writing nothing, if
    /// any application, API key, user, session or signing key exists; settings
    /// are upserted. Appends nothing to the change feed: servers started
    /// afterwards load everything from storage.
    async fn import_records(&self, records: &[ExportRecord]) -> StoreResult<()>;
}
