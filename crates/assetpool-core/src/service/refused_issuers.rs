//! The keys whose tokens are refused through every key of their application
//! (a token names the key its session was opened through, `key_id`).
//!
//! The change feed is what says which keys are disabled: it adds and removes
//! them ([`RefusedIssuers::set_disabled`], [`RefusedIssuers::replace`] after
//! a gap). A key read from storage can be newer than the feed (a server whose
//! feed is a moment behind reads a key it had not cached), and a key read as
//! disabled or revoked is refused at once: its tokens must be too, or one
//! server would refuse the key and accept its tokens through a sibling until
//! the feed caught up. So a read adds what it found:
//!
//! - a disabled key ([`RefusedIssuers::disabled_by_read`]), unless the feed
//!   took a key out since the read began: an enable applied meanwhile may be
//!   newer than the read. Only the feed takes it out again.
//! - a revoked key ([`RefusedIssuers::revoked_by_read`]), for a while: a
//!   revocation is final, and the feed revokes the key's sessions with it, so
//!   the entry only has to last until the feed has caught up (or the server
//!   refuses everything as stale); housekeeping drops it then
//!   ([`RefusedIssuers::prune`]).

use crate::ids::KeyId;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};

/// The refused issuers of one server.
#[derive(Debug)]
pub(super) struct RefusedIssuers {
    /// Each key, with `None` while it is disabled (until the feed says it
    /// is enabled), or the time until which a key read as revoked is kept.
    keys: RwLock<HashMap<KeyId, Option<DateTime<Utc>>>>,
    /// Whether `keys` is not empty: the one branch a token pays otherwise.
    any: AtomicBool,
    /// How many times the feed took keys out (changed under `keys`' write
    /// lock, so a read's addition compares it under the same lock).
    releases: AtomicU64,
}

impl RefusedIssuers {
    /// The disabled keys storage holds at start.
    pub(super) fn new(disabled: HashSet<KeyId>) -> Self {
        let issuers = RefusedIssuers {
            keys: RwLock::new(HashMap::new()),
            any: AtomicBool::new(false),
            releases: AtomicU64::new(0),
        };
        issuers.replace(disabled);
        issuers
    }

    /// Whether the tokens of `key_id` are refused. One atomic load while no
    /// key is in the set.
    #[inline]
    pub(super) fn contains(&self, key_id: &str) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        match self.keys.read() {
            Ok(keys) => keys.contains_key(key_id),
            // Fail closed.
            Err(_) => true,
        }
    }

    /// The count to pass to [`RefusedIssuers::disabled_by_read`], taken
    /// before the read begins.
    pub(super) fn releases(&self) -> u64 {
        self.releases.load(Ordering::SeqCst)
    }

    /// The feed says `key_id` is disabled, or enabled.
    pub(super) fn set_disabled(&self, key_id: &KeyId, disabled: bool) {
        let mut keys = self.write();
        if disabled {
            keys.insert(key_id.clone(), None);
        } else {
            keys.remove(key_id);
            self.releases.fetch_add(1, Ordering::SeqCst);
        }
        self.any.store(!keys.is_empty(), Ordering::Release);
    }

    /// After a gap in the feed: the disabled keys storage holds now, and
    /// nothing else.
    pub(super) fn replace(&self, disabled: HashSet<KeyId>) {
        let mut keys = self.write();
        *keys = disabled.into_iter().map(|key_id| (key_id, None)).collect();
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.any.store(!keys.is_empty(), Ordering::Release);
    }

    /// A read of storage, begun when [`RefusedIssuers::releases`] was
    /// `releases_before`, found `key_id` disabled. Returns whether the key is
    /// refused now: `false` when the feed took a key out since the read
    /// began, so the read may be older than an enable (then the record read
    /// must not be kept either).
    pub(super) fn disabled_by_read(&self, key_id: &KeyId, releases_before: u64) -> bool {
        if self.contains(key_id.as_str()) {
            return true;
        }
        let mut keys = self.write();
        if self.releases.load(Ordering::SeqCst) != releases_before {
            return false;
        }
        keys.insert(key_id.clone(), None);
        self.any.store(true, Ordering::Release);
        true
    }

    /// A read of storage found `key_id` revoked: its tokens are refused
    /// until `until` at least (a disabled entry is kept as it is).
    pub(super) fn revoked_by_read(&self, key_id: &KeyId, until: DateTime<Utc>) {
        let mut keys = self.write();
        let entry = keys.entry(key_id.clone()).or_insert(Some(until));
        if let Some(kept) = entry {
            *kept = (*kept).max(until);
        }
        self.any.store(true, Ordering::Release);
    }

    /// Drops the revoked keys kept until `now` or before.
    pub(super) fn prune(&self, now: DateTime<Utc>) {
        let mut keys = self.write();
        keys.retain(|_, until| until.is_none_or(|until| until > now));
        self.any.store(!keys.is_empty(), Ordering::Release);
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<KeyId, Option<DateTime<Utc>>>> {
        match self.keys.write() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn key(id: &str) -> KeyId {
        KeyId::from(id)
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, minute, 0).unwrap()
    }

    #[test]
    fn the_feed_adds_and_removes_disabled_keys() {
        let issuers = RefusedIssuers::new(HashSet::from([key("key_a")]));
        assert!(issuers.contains("key_a"));
        assert!(!issuers.contains("key_b"));
        issuers.set_disabled(&key("key_b"), true);
        issuers.set_disabled(&key("key_a"), false);
        assert!(!issuers.contains("key_a"));
        assert!(issuers.contains("key_b"));
        issuers.replace(HashSet::new());
        assert!(!issuers.contains("key_b"));
        assert!(!issuers.any.load(Ordering::Acquire));
    }

    #[test]
    fn a_read_adds_a_disabled_key_until_the_feed_enables_it() {
        let issuers = RefusedIssuers::new(HashSet::new());
        let before = issuers.releases();
        assert!(issuers.disabled_by_read(&key("key_a"), before));
        assert!(issuers.contains("key_a"));
        // Housekeeping keeps it: only the feed takes a disabled key out.
        issuers.prune(at(59));
        assert!(issuers.contains("key_a"));
        issuers.set_disabled(&key("key_a"), false);
        assert!(!issuers.contains("key_a"));
    }

    #[test]
    fn a_read_older_than_an_enable_adds_nothing() {
        let issuers = RefusedIssuers::new(HashSet::from([key("key_a")]));
        // The read begins while the key is disabled...
        let before = issuers.releases();
        // ... the feed applies an enable before it ends ...
        issuers.set_disabled(&key("key_a"), false);
        // ... and it found the key disabled: too old to add.
        assert!(!issuers.disabled_by_read(&key("key_a"), before));
        assert!(!issuers.contains("key_a"));
        // Any key taken out since counts, as does a replacement.
        let before = issuers.releases();
        issuers.replace(HashSet::new());
        assert!(!issuers.disabled_by_read(&key("key_b"), before));
        // A read begun after them adds.
        assert!(issuers.disabled_by_read(&key("key_b"), issuers.releases()));
        assert!(issuers.contains("key_b"));
    }

    #[test]
    fn a_key_already_refused_stays_refused_whatever_the_read_began_with() {
        let issuers = RefusedIssuers::new(HashSet::from([key("key_a")]));
        let before = issuers.releases();
        issuers.set_disabled(&key("key_b"), false);
        assert!(issuers.disabled_by_read(&key("key_a"), before));
        assert!(issuers.contains("key_a"));
    }

    #[test]
    fn a_key_read_as_revoked_is_kept_for_a_while() {
        let issuers = RefusedIssuers::new(HashSet::new());
        issuers.revoked_by_read(&key("key_a"), at(2));
        issuers.revoked_by_read(&key("key_a"), at(1));
        issuers.prune(at(1));
        assert!(issuers.contains("key_a"));
        issuers.prune(at(2));
        assert!(!issuers.contains("key_a"));
        assert!(!issuers.any.load(Ordering::Acquire));
        // A disabled key read as revoked later stays until the feed says.
        issuers.set_disabled(&key("key_b"), true);
        issuers.revoked_by_read(&key("key_b"), at(1) + Duration::seconds(1));
        issuers.prune(at(30));
        assert!(issuers.contains("key_b"));
    }
}
