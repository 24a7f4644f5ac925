//! The storage boundary: one object-safe async trait, [`Store`], held as
//! `Arc<dyn Store>`, made of one trait per concern (one file each, with the
//! records it reads and writes): [`ChangeFeed`], [`KeyStore`], [`UsageStore`],
//! [`ThrottleStore`], [`UserStore`], [`SessionStore`], [`SigningKeyStore`],
//! [`TransferStore`], [`AlertStore`], [`AuditLog`], [`ApplicationStore`] and
//! [`ConsoleSessionStore`] (the web console's sessions).
//! Bring them into scope
//! with `use assetpool_core::store::prelude::*`.
//!
//! Each method is one atomic operation named after its intent. Every mutation
//! that other servers must learn about appends a [`Change`] in the same
//! transaction; servers follow the change feed to keep their in-memory state
//! fresh. Decisions are core's; a backend only reads and writes.

mod alerts;
mod applications;
mod audit;
mod changes;
mod console_sessions;
mod keys;
mod sessions;
mod signing_keys;
mod throttle;
mod transfer;
mod usage;
mod users;

pub use alerts::*;
pub use applications::*;
pub use audit::*;
pub use changes::*;
pub use console_sessions::*;
pub use keys::*;
pub use sessions::*;
pub use signing_keys::*;
pub use throttle::*;
pub use transfer::*;
pub use usage::*;
pub use users::*;

/// A storage failure. A database error is never turned into "not found".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// The write conflicts with existing data (e.g. a duplicate email).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Storage cannot be reached right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Other(String),
}

/// The reason of the `Conflict` [`TransferStore::import_records`] reports on a
/// database that already holds data.
pub const DATABASE_NOT_EMPTY: &str = "the database is not empty";

/// Result of a storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A page request: newest first, strictly before `before` (a `seq`), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only records with a smaller `seq`.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A page of a list kept in creation order (keys, users): the records
/// created strictly after `after` (the creation time and id of the previous
/// page's last record), oldest first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationPage {
    /// Only records after this (creation time, id).
    pub after: Option<(chrono::DateTime<chrono::Utc>, String)>,
    /// At most this many.
    pub limit: u32,
}

impl CreationPage {
    /// Every record.
    pub fn all() -> Self {
        CreationPage {
            after: None,
            limit: u32::MAX,
        }
    }
}

/// Every storage operation: the union of the traits of each concern. Any
/// type implementing all of them is a `Store`.
pub trait Store:
    ChangeFeed
    + KeyStore
    + UsageStore
    + ThrottleStore
    + UserStore
    + SessionStore
    + SigningKeyStore
    + TransferStore
    + AlertStore
    + AuditLog
    + ApplicationStore
    + ConsoleSessionStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: ChangeFeed
        + KeyStore
        + UsageStore
        + ThrottleStore
        + UserStore
        + SessionStore
        + SigningKeyStore
        + TransferStore
        + AlertStore
        + AuditLog
        + ApplicationStore
        + ConsoleSessionStore
        + Send
        + Sync
        + 'static
{
}

/// The storage traits, to call storage operations on an `Arc<dyn Store>`.
pub mod prelude {
    pub use super::{
        AlertStore, ApplicationStore, AuditLog, ChangeFeed, ConsoleSessionStore, KeyStore,
        SessionStore, SigningKeyStore, Store, ThrottleStore, TransferStore, UsageStore, UserStore,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_at_rest() {
        let now = chrono::Utc::now();
        let user = UserRecord {
            id: "usr_1".into(),
            email: "a@example.com".into(),
            password_hash: "$argon2id$v=19$secret-hash".into(),
            admin: false,
            disabled: false,
            created_at: now,
            password_version: 0,
            scopes: None,
        };
        assert!(!format!("{user:?}").contains("secret-hash"));
        let key = SigningKeyRecord {
            kid: "sig_1".into(),
            algorithm: "EdDSA".into(),
            sealed_private_key: "plain:c2VjcmV0LWtleQ==".into(),
            public_key: vec![1, 2, 3],
            created_at: now,
            retired_at: None,
            retires_at: None,
        };
        assert!(!format!("{key:?}").contains("c2VjcmV0LWtleQ"));
    }
}
