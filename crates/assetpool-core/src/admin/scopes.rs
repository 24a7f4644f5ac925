//! Support staff's changes to a user's scopes.

use super::{user_response, Admin};
use crate::password::normalize_email;
use crate::scopes::ScopeSet;
use crate::ServiceError;
use assetpool_wire::UserResponse;

/// What [`Admin::set_user_scopes`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScopesChanged {
    /// The user after the change.
    pub user: UserResponse,
    /// How many of the user's live sessions were revoked (granted a scope
    /// outside the new set).
    pub sessions_revoked: u64,
}

impl Admin {
    /// Replaces a user's scopes (`None`: unrestricted). The user's live
    /// sessions granted a scope outside the new set are revoked in the same
    /// transaction, so every server refuses their tokens within a second;
    /// sessions within it go on (a widening never widens a live session).
    pub async fn set_user_scopes(
        &self,
        email: &str,
        scopes: Option<ScopeSet>,
    ) -> Result<UserScopesChanged, ServiceError> {
        let detail = serde_json::json!({ "scopes": scopes.as_ref().map(ScopeSet::to_vec) });
        let change = self.change("user.update", &normalize_email(email), detail);
        let result = async {
            let user = self.user(email).await?;
            let (user, sessions_revoked) = change
                .store
                .set_user_scopes(&user.id, scopes.as_ref(), self.clock.now())
                .await?;
            Ok(UserScopesChanged {
                user: user_response(&user),
                sessions_revoked,
            })
        }
        .await;
        self.settle(change, &result).await;
        result
    }
}
