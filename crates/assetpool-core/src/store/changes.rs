//! The change feed every server follows, and the settings every server
//! shares: the records and [`ChangeFeed`].

use super::StoreResult;
use crate::ids::{KeyId, SessionId};
use crate::SecretHash;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A mutation other servers must apply to their in-memory state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An API key was created, revoked, rotated or changed: drop it from caches.
    ApiKey {
        /// Hash of the key.
        key_hash: SecretHash,
    },
    /// A session was revoked; its access tokens are refused until `until`.
    SessionRevoked {
        /// Session id.
        session_id: SessionId,
        /// Latest expiry of the session's access tokens.
        until: DateTime<Utc>,
    },
    /// The set of signing keys changed.
    SigningKeys,
    /// A key was disabled or enabled: the tokens of the sessions opened
    /// through it are refused, or accepted again. (The key itself is also
    /// announced as [`Change::ApiKey`].)
    KeyDisabled {
        /// Key id.
        key_id: KeyId,
        /// Disabled (`true`) or enabled.
        disabled: bool,
    },
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Position in the feed (increasing).
    pub id: i64,
    /// What changed.
    pub change: Change,
}

/// The change feed other servers follow, and the settings every server shares.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Checks that storage answers.
    async fn ping(&self) -> StoreResult<()>;
    /// The issuer recorded at first start, recording `candidate` if none is.
    async fn issuer_or_record(&self, candidate: &str) -> StoreResult<String>;
    /// Records that some server issues tokens living `ttl_seconds`; returns the longest recorded.
    async fn record_token_ttl(&self, ttl_seconds: i64) -> StoreResult<i64>;
    /// The longest token lifetime any server recorded (0 if none).
    async fn longest_token_ttl(&self) -> StoreResult<i64>;
    /// The id of the newest change (0 if none).
    async fn latest_change_id(&self) -> StoreResult<i64>;
    /// Changes after `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<ChangeRecord>>;
    /// Deletes changes older than `before` (housekeeping).
    async fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// The highest change id ever pruned (0 if none): a follower whose last
    /// applied change is below it missed changes it can no longer read.
    async fn changes_pruned_through(&self) -> StoreResult<i64>;
    /// Waits until the change feed may have new entries, or `timeout` passes.
    /// Backends that cannot push notifications just wait (the follower then polls).
    async fn wait_for_changes(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
}
