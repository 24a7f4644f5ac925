//! `audit verify`: the check of the audit log's hash chain.

use super::Admin;
use crate::audit_chain::{ChainBreak, ChainVerifier};
use crate::ServiceError;
use assetpool_wire::AuditVerificationResponse;

/// Entries read at once while verifying.
const VERIFY_PAGE: u32 = 500;

/// What [`Admin::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Entries checked (those of the chain).
    pub checked: u64,
    /// The chain covers the entries after this one; those up to it were
    /// written before the chain was introduced and are not covered.
    pub started_after: i64,
    /// The hash of the last entry (keep it elsewhere to detect a rewrite of
    /// the whole chain later).
    pub last_hash: String,
    /// The first break, if the chain is broken.
    pub broken: Option<ChainBreak>,
}

impl AuditVerification {
    /// The wire form (`audit verify --json`, `GET /admin/audit/verify`).
    pub fn to_response(&self) -> AuditVerificationResponse {
        AuditVerificationResponse {
            checked: self.checked,
            started_after: self.started_after,
            last_hash: self.last_hash.clone(),
            broken: self.broken.as_ref().map(ToString::to_string),
        }
    }
}

impl Admin {
    /// Walks the audit log's hash chain, oldest first, and reports the first
    /// entry that does not fit (changed, removed, inserted, or the log cut
    /// short). Entries appended while it runs are checked too.
    pub async fn verify_audit(&self) -> Result<AuditVerification, ServiceError> {
        let mut head = self.store.audit_chain_head().await?;
        let mut verifier = ChainVerifier::default();
        let mut after = head.started_after;
        let mut checked = 0_u64;
        loop {
            let links = self.store.audit_links(after, VERIFY_PAGE).await?;
            if links.is_empty() {
                // Appends that committed since the head was read continue the walk.
                let latest = self.store.audit_chain_head().await?;
                if latest.last_seq > head.last_seq && latest.last_seq > Some(after) {
                    head = latest;
                    continue;
                }
                break;
            }
            for link in &links {
                if let Err(broken) = verifier.check(link) {
                    return Ok(AuditVerification {
                        checked,
                        started_after: head.started_after,
                        last_hash: head.last_hash,
                        broken: Some(broken),
                    });
                }
                checked += 1;
                after = link.record.seq;
            }
        }
        let broken = verifier.finish(&head).err();
        Ok(AuditVerification {
            checked,
            started_after: head.started_after,
            last_hash: head.last_hash,
            broken,
        })
    }
}
