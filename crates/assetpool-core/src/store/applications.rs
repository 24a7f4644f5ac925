//! Applications as records: their members and the members-only rule, and
//! [`ApplicationStore`]. (An application's creation and lookup by id, which
//! keys need, are in [`super::KeyStore`].)

use super::{ApplicationRecord, CreationPage, StoreResult};
use crate::ids::{ApplicationId, UserId};
use assetpool_wire::ApplicationRole;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A member of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationMember {
    /// The user.
    pub user_id: UserId,
    /// The user's (normalised) email.
    pub email: String,
    /// Owner or member.
    pub role: ApplicationRole,
    /// When the user became a member.
    pub created_at: DateTime<Utc>,
}

/// An application with its members, ordered by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationWithMembers {
    /// The application.
    pub application: ApplicationRecord,
    /// Its members.
    pub members: Vec<ApplicationMember>,
}

/// What `applications update` changes (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationUpdate {
    /// New display name.
    pub name: Option<String>,
    /// Whether only members may log in.
    pub members_only: Option<bool>,
}

impl ApplicationUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.members_only.is_none()
    }
}

/// Applications as records: listing, changes, members, and whether an
/// application admits a user ([`ApplicationRecord::admits`]).
///
/// Whenever a change leaves an application members-only, the live sessions
/// it opened for users it no longer admits are revoked and announced in the
/// same transaction (their tokens are refused everywhere within a second).
/// Changes lock the application's row, and opening a session share-locks it,
/// so a login never opens a session that a concurrent change should have
/// ended.
#[async_trait]
pub trait ApplicationStore: Send + Sync {
    /// Lists applications with their members in creation order, one page
    /// (keyset pagination in storage).
    async fn list_applications(
        &self,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApplicationWithMembers>>;
    /// Finds an application with its members.
    async fn application_with_members(
        &self,
        id: &ApplicationId,
    ) -> StoreResult<Option<ApplicationWithMembers>>;
    /// Changes an application's name or members-only flag. `NotFound` if
    /// there is no such application.
    async fn update_application(
        &self,
        id: &ApplicationId,
        update: &ApplicationUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationWithMembers>;
    /// Makes an existing user a member with `role`, or changes the role of a
    /// member. `NotFound` if there is no such application.
    async fn set_application_member(
        &self,
        id: &ApplicationId,
        user_id: &UserId,
        role: ApplicationRole,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationWithMembers>;
    /// Removes a member (in a members-only application, the user's sessions
    /// there end). `NotFound` if there is no such application or the user is
    /// not a member.
    async fn remove_application_member(
        &self,
        id: &ApplicationId,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationWithMembers>;
    /// Whether the application admits the user of `account` (a normalised
    /// email, which need not name a user) to log in through its keys. One
    /// read, whoever asks, so that a login costs the same for anyone.
    async fn application_admits(&self, id: &ApplicationId, account: &str) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_only_applications_admit_only_members() {
        let mut application = ApplicationRecord {
            id: "app_1".into(),
            name: "shop".into(),
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
            members_only: false,
        };
        assert!(application.admits(false));
        assert!(application.admits(true));
        application.members_only = true;
        assert!(!application.admits(false));
        assert!(application.admits(true));
    }

    #[test]
    fn an_empty_update_changes_nothing() {
        assert!(ApplicationUpdate::default().is_empty());
        let update = ApplicationUpdate {
            members_only: Some(false),
            ..ApplicationUpdate::default()
        };
        assert!(!update.is_empty());
    }
}
