//! User accounts: the record and [`UserStore`].

use super::{CreationPage, StoreResult};
use crate::ids::UserId;
use crate::ScopeSet;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A user account. `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// User id.
    pub id: UserId,
    /// Normalised (NFKC, lowercase) email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// May use the admin API.
    pub admin: bool,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Counts the user's password changes (a re-hash of the same password
    /// keeps it): a login opens its session only while it is unchanged.
    pub password_version: i64,
    /// What the user may do (`None`: unrestricted).
    pub scopes: Option<ScopeSet>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("admin", &self.admin)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("password_version", &self.password_version)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// User accounts and their passwords.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `Conflict` if the email is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Finds a user by normalised email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Lists users in creation order, one page (keyset pagination in storage).
    async fn list_users(&self, page: &CreationPage) -> StoreResult<Vec<UserRecord>>;
    /// Replaces a password hash, advances the password version and revokes
    /// all the user's sessions.
    async fn set_password(
        &self,
        user_id: &UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces a password hash after a successful login with outdated
    /// parameters (sessions are kept), only if the password is still of
    /// `password_version` (a re-hash never writes an old password back over
    /// a new one). Returns whether it was replaced.
    async fn upgrade_password_hash(
        &self,
        user_id: &UserId,
        password_version: i64,
        new_hash: &str,
    ) -> StoreResult<bool>;
    /// Disables or enables a user; disabling revokes all the user's sessions
    /// and ends its console sessions, in the same transaction.
    async fn set_user_disabled(
        &self,
        user_id: &UserId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces a user's scopes (`None`: unrestricted) and, in the same
    /// transaction, revokes (and announces) the user's live sessions that do
    /// not survive the change ([`crate::scopes::session_survives`]). Returns
    /// the updated user and how many sessions were revoked.
    async fn set_user_scopes(
        &self,
        user_id: &UserId,
        scopes: Option<&ScopeSet>,
        now: DateTime<Utc>,
    ) -> StoreResult<(UserRecord, u64)>;
}
