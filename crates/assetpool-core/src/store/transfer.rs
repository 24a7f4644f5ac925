//! Moving all durable state between databases: [`TransferStore`].

use super::StoreResult;
use crate::export::{import_order, ExportRecord};
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

/// Where [`TransferStore::import_from`] takes the records from, a batch at a
/// time (so an import of a million keys holds one batch in memory).
pub trait ImportSource: Send {
    /// The next records, at most a few thousand, in import order: a batch's
    /// kinds never rank ([`ExportRecord::rank`]) below the previous
    /// record's. `None` at the end; an error stops the import, writing
    /// nothing.
    fn next_batch(&mut self) -> StoreResult<Option<Vec<ExportRecord>>>;
}

/// Records of a slice in import order, in batches of [`SLICE_BATCH`].
struct SliceSource<'a> {
    ordered: std::vec::IntoIter<&'a ExportRecord>,
}

/// Records per batch of [`TransferStore::import_records`].
const SLICE_BATCH: usize = 1000;

impl ImportSource for SliceSource<'_> {
    fn next_batch(&mut self) -> StoreResult<Option<Vec<ExportRecord>>> {
        let batch: Vec<ExportRecord> = self.ordered.by_ref().take(SLICE_BATCH).cloned().collect();
        Ok((!batch.is_empty()).then_some(batch))
    }
}

/// Moving all durable state between databases (`export`, `import`).
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// All durable state, in export order: settings, applications, API keys,
    /// users, application members, signing keys, sessions, refresh tokens,
    /// alerts, the audit log and its chain's head; each kind oldest first.
    /// Read from one consistent snapshot, row by row into `sink`. The change
    /// feed, usage series, throttle state, console sessions and the webhook
    /// outbox are not exported.
    async fn export_to(&self, sink: &mut dyn ExportSink) -> StoreResult<()>;

    /// [`TransferStore::export_to`] into a vector (small databases, tests).
    async fn export_records(&self) -> StoreResult<Vec<ExportRecord>> {
        let mut records = Vec::new();
        self.export_to(&mut records).await?;
        Ok(records)
    }
    /// Writes the records of `source` into this store in one transaction,
    /// batch by batch. Fails with `Conflict(`[`super::DATABASE_NOT_EMPTY`]`)`,
    /// writing nothing, if any application, API key, user, session, signing
    /// key, alert or audit entry exists; settings are upserted. A record out
    /// of import order fails the import (`Other`), writing nothing. Appends
    /// nothing to the change feed: servers started afterwards load everything
    /// from storage.
    async fn import_from(&self, source: &mut dyn ImportSource) -> StoreResult<()>;

    /// [`TransferStore::import_from`] the records of a slice, in
    /// [`crate::export::import_order`] whatever their order in `records`.
    async fn import_records(&self, records: &[ExportRecord]) -> StoreResult<()> {
        let mut source = SliceSource {
            ordered: import_order(records).into_iter(),
        };
        self.import_from(&mut source).await
    }
}
