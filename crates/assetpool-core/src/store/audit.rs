//! The append-only audit log: the records and [`AuditLog`].

use super::{Page, Store, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// This store, except that every transaction it writes in appends
    /// `pending`'s entry first (under the chain's lock), so that a change and
    /// its entry commit or roll back together.
    fn audited(&self, pending: Arc<PendingAudit>) -> Arc<dyn Store>;
    /// Where the hash chain starts and ends.
    async fn audit_chain_head(&self) -> StoreResult<AuditChainHead>;
    /// The entries after `after` (of the chain or written after it began),
    /// oldest first, at most `limit`, with their hashes.
    async fn audit_links(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditLink>>;
}

/// The audit entry of one change, waiting for the transaction that writes
/// the change ([`AuditLog::audited`]).
#[derive(Debug)]
pub struct PendingAudit {
    entry: NewAuditEntry,
    appended: AtomicBool,
}

impl PendingAudit {
    /// `entry`, not appended yet.
    pub fn new(entry: NewAuditEntry) -> Arc<Self> {
        Arc::new(PendingAudit {
            entry,
            appended: AtomicBool::new(false),
        })
    }

    /// The entry.
    pub fn entry(&self) -> &NewAuditEntry {
        &self.entry
    }

    /// Notes that a transaction appended the entry (it lands if that
    /// transaction commits).
    pub fn mark_appended(&self) {
        self.appended.store(true, Ordering::Release);
    }

    /// Whether a transaction appended the entry.
    pub fn appended(&self) -> bool {
        self.appended.load(Ordering::Acquire)
    }
}

/// A stored entry with its place in the hash chain (`None` for entries
/// written before the chain began, or not through the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLink {
    /// The entry.
    pub record: AuditRecord,
    /// The hash of the entry before it in the chain.
    pub previous_hash: Option<String>,
    /// Its own hash (`audit_chain::link_hash`).
    pub hash: Option<String>,
}

/// The ends of the hash chain, kept in one row that every append updates
/// (and locks, so appends run one at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChainHead {
    /// The chain covers the entries after this one (entries written before
    /// the chain was introduced are not in it).
    pub started_after: i64,
    /// The last entry appended to the chain, if any.
    pub last_seq: Option<i64>,
    /// Its hash (`audit_chain::GENESIS` while the chain is empty).
    pub last_hash: String,
}
