//! The tamper-evident chain of the audit log: each entry carries the hash of
//! the entry before it, and its own hash over both.
//!
//! A link's hash is SHA-256 over a canonical encoding: a version tag, the
//! previous hash, then every field of the entry, each length-prefixed (so no
//! two different entries encode alike), the time as milliseconds since the
//! epoch (as stored). The first entry of the chain follows [`GENESIS`].
//! [`ChainVerifier`] walks the log oldest first and names the first entry
//! that does not fit. Whoever can write the database can still rewrite the
//! whole chain from some entry on; keeping [`AuditChainHead::last_hash`]
//! elsewhere (e.g. from `assetpool audit verify --json`) detects that too.

use crate::store::{AuditChainHead, AuditLink, NewAuditEntry};
use sha2::{Digest, Sha256};

/// The previous hash of the chain's first entry: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const VERSION_TAG: &[u8] = b"assetpool-audit-chain-v1";

/// The hash of `entry` following the entry whose hash is `previous`, in
/// lower-case hex.
pub fn link_hash(previous: &str, entry: &NewAuditEntry) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(VERSION_TAG);
    field(previous.as_bytes());
    field(&entry.at.timestamp_millis().to_be_bytes());
    field(entry.actor.as_bytes());
    optional(&mut field, entry.actor_id.as_deref());
    field(entry.action.as_bytes());
    field(entry.target.as_bytes());
    field(entry.outcome.as_bytes());
    optional(&mut field, entry.error.as_deref());
    field(entry.detail.as_bytes());
    let digest = hasher.finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An optional field: a presence byte, then the value when present.
fn optional(field: &mut impl FnMut(&[u8]), value: Option<&str>) {
    match value {
        None => field(&[0]),
        Some(value) => {
            field(&[1]);
            field(value.as_bytes());
        }
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry does not follow the one before it (one was removed or
    /// inserted before it), or carries no hash.
    #[error("audit entry {seq} does not follow the entry before it")]
    NotLinked {
        /// The entry.
        seq: i64,
    },
    /// The entry was changed after it was written.
    #[error("audit entry {seq} was changed after it was written")]
    Altered {
        /// The entry.
        seq: i64,
    },
    /// The log ends before the last entry the chain recorded (entries were
    /// removed from its end).
    #[error("the audit log ends before its last recorded entry {last_seq}")]
    Truncated {
        /// The last entry the chain head names.
        last_seq: i64,
    },
}

impl ChainBreak {
    /// The entry where the chain breaks.
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::NotLinked { seq } | ChainBreak::Altered { seq } => *seq,
            ChainBreak::Truncated { last_seq } => *last_seq,
        }
    }
}

/// Checks the chain entry by entry, oldest first.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_previous: String,
    checked: u64,
    last_seq: Option<i64>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_previous: GENESIS.to_owned(),
            checked: 0,
            last_seq: None,
        }
    }
}

impl ChainVerifier {
    /// Checks the next entry of the chain.
    pub fn check(&mut self, link: &AuditLink) -> Result<(), ChainBreak> {
        let seq = link.record.seq;
        let (Some(previous), Some(hash)) = (&link.previous_hash, &link.hash) else {
            return Err(ChainBreak::NotLinked { seq });
        };
        if *previous != self.expected_previous {
            return Err(ChainBreak::NotLinked { seq });
        }
        if link_hash(previous, &link.record.entry) != *hash {
            return Err(ChainBreak::Altered { seq });
        }
        self.expected_previous.clone_from(hash);
        self.checked += 1;
        self.last_seq = Some(seq);
        Ok(())
    }

    /// After the last entry: the chain must end where its head says.
    /// Returns how many entries were checked.
    pub fn finish(self, head: &AuditChainHead) -> Result<u64, ChainBreak> {
        if head.last_hash != self.expected_previous || head.last_seq != self.last_seq {
            return Err(ChainBreak::Truncated {
                last_seq: head.last_seq.unwrap_or(0),
            });
        }
        Ok(self.checked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::AuditRecord;

    fn entry(target: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            actor: "cli:alice".to_owned(),
            actor_id: None,
            action: "key.revoke".to_owned(),
            target: target.to_owned(),
            outcome: "success".to_owned(),
            error: None,
            detail: "{}".to_owned(),
        }
    }

    fn chain(targets: &[&str]) -> (Vec<AuditLink>, AuditChainHead) {
        let mut previous = GENESIS.to_owned();
        let mut links = Vec::new();
        for (index, target) in targets.iter().enumerate() {
            let entry = entry(target);
            let hash = link_hash(&previous, &entry);
            links.push(AuditLink {
                record: AuditRecord {
                    seq: i64::try_from(index).unwrap() + 1,
                    entry,
                },
                previous_hash: Some(previous.clone()),
                hash: Some(hash.clone()),
            });
            previous = hash;
        }
        let head = AuditChainHead {
            started_after: 0,
            last_seq: links.last().map(|link| link.record.seq),
            last_hash: previous,
        };
        (links, head)
    }

    fn verify(links: &[AuditLink], head: &AuditChainHead) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::default();
        for link in links {
            verifier.check(link)?;
        }
        verifier.finish(head)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (links, head) = chain(&["a", "b", "c"]);
        assert_eq!(verify(&links, &head), Ok(3));
        let (links, head) = chain(&[]);
        assert_eq!(verify(&links, &head), Ok(0));
    }

    #[test]
    fn every_field_is_covered_and_fields_cannot_shift() {
        let base = entry("a");
        let hash = link_hash(GENESIS, &base);
        let mut changed = base.clone();
        changed.actor_id = Some(String::new());
        assert_ne!(link_hash(GENESIS, &changed), hash);
        let mut changed = base.clone();
        changed.at += chrono::Duration::milliseconds(1);
        assert_ne!(link_hash(GENESIS, &changed), hash);
        // Moving a character between fields changes the hash.
        let mut left = base.clone();
        left.action = "key.revokea".to_owned();
        left.target = String::new();
        assert_ne!(link_hash(GENESIS, &left), hash);
        assert_ne!(link_hash(&hash, &base), hash);
        assert_eq!(hash.len(), 64);
    }

    #[test]
    fn altering_removing_or_truncating_is_found() {
        let (mut links, head) = chain(&["a", "b", "c"]);
        links[1].record.entry.outcome = "failure".to_owned();
        assert_eq!(verify(&links, &head), Err(ChainBreak::Altered { seq: 2 }));

        let (mut links, head) = chain(&["a", "b", "c"]);
        links.remove(1);
        assert_eq!(verify(&links, &head), Err(ChainBreak::NotLinked { seq: 3 }));

        let (mut links, head) = chain(&["a", "b", "c"]);
        links.pop();
        assert_eq!(
            verify(&links, &head),
            Err(ChainBreak::Truncated { last_seq: 3 })
        );

        let (mut links, head) = chain(&["a", "b"]);
        links[0].hash = None;
        assert_eq!(verify(&links, &head), Err(ChainBreak::NotLinked { seq: 1 }));
    }
}
