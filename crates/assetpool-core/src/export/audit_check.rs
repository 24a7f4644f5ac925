//! The audit log of an import checked as `audit verify` would check it
//! after the import: [`AuditImportCheck`].

use super::{ExportRecord, ExportedAuditEntry};
use crate::audit_chain::ChainVerifier;
use crate::store::{AuditChainHead, AuditLink, AuditRecord, NewAuditEntry};

/// Checks, record by record in import order, that an import's audit
/// entries and its one `audit_chain` line form a chain that verifies: the
/// entries before the chain (no hashes) come first, every later entry links
/// to the one before it, and the head names where the chain starts and its
/// last entry and hash. An export cut short (its last line, the chain's
/// head, lost) or edited fails here, before anything is written.
#[derive(Debug, Default)]
pub struct AuditImportCheck {
    verifier: ChainVerifier,
    entries: u64,
    previous_seq: Option<i64>,
    last_unhashed: Option<i64>,
    first_hashed: Option<i64>,
    head: Option<AuditChainHead>,
}

impl AuditImportCheck {
    /// Takes the next record (other kinds are passed over).
    pub fn record(&mut self, record: &ExportRecord) -> Result<(), String> {
        match record {
            ExportRecord::AuditEntry(entry) => self.entry(entry),
            ExportRecord::AuditChain(head) => {
                if self.head.is_some() {
                    return Err("a second audit_chain line".to_owned());
                }
                self.head = Some(AuditChainHead {
                    started_after: head.started_after,
                    last_seq: head.last_seq,
                    last_hash: head.last_hash.clone(),
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn entry(&mut self, entry: &ExportedAuditEntry) -> Result<(), String> {
        let seq = entry.seq;
        if self.head.is_some() {
            return Err(format!("audit entry {seq} after the audit_chain line"));
        }
        if self.previous_seq.is_some_and(|previous| seq <= previous) {
            return Err(format!("audit entry {seq} out of order"));
        }
        self.previous_seq = Some(seq);
        self.entries += 1;
        match (&entry.previous_hash, &entry.hash) {
            (None, None) => {
                if self.first_hashed.is_some() {
                    return Err(format!(
                        "audit entry {seq} carries no hash, after the hash chain began"
                    ));
                }
                self.last_unhashed = Some(seq);
                Ok(())
            }
            (Some(previous_hash), Some(hash)) => {
                self.first_hashed.get_or_insert(seq);
                let link = AuditLink {
                    record: AuditRecord {
                        seq,
                        entry: NewAuditEntry {
                            at: entry.at,
                            actor: entry.actor.clone(),
                            actor_id: entry.actor_id.clone(),
                            action: entry.action.clone(),
                            target: entry.target.clone(),
                            outcome: entry.outcome.clone(),
                            error: entry.error.clone(),
                            detail: entry.detail.clone(),
                        },
                    },
                    previous_hash: Some(previous_hash.clone()),
                    hash: Some(hash.clone()),
                };
                self.verifier
                    .check(&link)
                    .map_err(|error| error.to_string())
            }
            _ => Err(format!("audit entry {seq} carries one of its two hashes")),
        }
    }

    /// After the last record: the head must be there (when there are
    /// entries) and agree with them.
    pub fn finish(self) -> Result<(), String> {
        let Some(head) = self.head else {
            if self.entries > 0 {
                return Err(
                    "audit entries without the audit_chain line that ends an export (is the \
                     export cut short?)"
                        .to_owned(),
                );
            }
            return Ok(());
        };
        if let Some(first) = self.first_hashed {
            if head.started_after >= first {
                return Err(format!(
                    "the audit chain starts after entry {}, past its first entry {first}",
                    head.started_after
                ));
            }
        }
        if let Some(last) = self.last_unhashed {
            if head.started_after < last {
                return Err(format!(
                    "audit entry {last} carries no hash but lies within the chain"
                ));
            }
        }
        self.verifier
            .finish(&head)
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}
