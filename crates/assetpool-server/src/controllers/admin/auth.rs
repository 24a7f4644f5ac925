//! [`AdminAuthenticated`]: the check in front of every admin route.

use crate::error::ApiError;
use crate::extract::authenticate_request;
use crate::state::AppState;
use assetpool_core::admin::{Actor, Admin};
use assetpool_core::ids::UserId;
use assetpool_core::ServiceError;
use assetpool_wire::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// A request from an admin: its API key and token pass exactly the checks
/// of a protected request (same refusals, same order), and the token's user
/// exists, is an admin and is not disabled (else 403 `forbidden`).
///
/// Carries the [`Admin`] operations, recorded in the audit log as done by
/// `admin:<email>` with the user's id.
#[derive(Debug)]
pub struct AdminAuthenticated {
    /// Support staff's operations, acting as this admin.
    pub admin: Admin,
    /// The admin's user id.
    pub user_id: UserId,
    /// The admin's email.
    pub email: String,
}

impl FromRequestParts<AppState> for AdminAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let verified = authenticate_request(&parts.headers, &parts.extensions, state).await?;
        let claims = &verified.claims;
        // One read per admin request: the admin flag is not in the token, and
        // a user who stops being an admin must lose access at once.
        let user = state
            .service
            .store()
            .user_by_email(&claims.email)
            .await
            .map_err(ServiceError::from)?;
        let Some(user) = user.filter(|user| user.id.as_str() == claims.sub) else {
            return Err(forbidden());
        };
        if !user.admin || user.disabled {
            return Err(forbidden());
        }
        let actor = Actor::Admin {
            user_id: user.id.clone(),
            email: user.email.clone(),
        };
        Ok(AdminAuthenticated {
            admin: state.service.admin(actor),
            user_id: user.id,
            email: user.email,
        })
    }
}

fn forbidden() -> ApiError {
    ApiError::with_message(
        ErrorCode::Forbidden,
        "the admin API needs the token of an admin user",
    )
}
