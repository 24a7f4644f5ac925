//! The append-only audit log: the records and [`AuditLog`].

use super::{Page, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `cli:<os user>` or `admin:<email>`.
    pub actor: String,
    /// The admin user's id when the actor is one.
    pub actor_id: Option<String>,
    /// What, e.g. `key.revoke`, `user.disable`, `alert.ack`.
    pub action: String,
    /// On what: a key id, an email, a `kid`, an alert id.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code of a failure.
    pub error: Option<String>,
    /// Details as a JSON object (text), never a secret.
    pub detail: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, increasing.
    pub seq: i64,
    /// The entry.
    pub entry: NewAuditEntry,
}

/// The append-only audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends to the audit log (there is no way to change or delete an entry).
    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64>;
    /// Audit entries, newest first.
    async fn list_audit(&self, page: Page) -> StoreResult<Vec<AuditRecord>>;
}
