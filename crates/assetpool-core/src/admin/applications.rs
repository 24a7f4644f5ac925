//! Applications as records: create, list, show and change them, and manage
//! their members. Each change is audited (`application.create`,
//! `application.update`, `application.add_member`,
//! `application.remove_member`, with the application's id as target).

use super::{not_found, validate_name, Admin};
use crate::ids::ApplicationId;
use crate::password::normalize_email;
use crate::store::{
    ApplicationRecord, ApplicationUpdate, ApplicationWithMembers, CreationPage, StoreError,
};
use crate::ServiceError;
use assetpool_wire::{ApplicationMemberResponse, ApplicationResponse, ApplicationRole, ErrorCode};

const NO_APPLICATION: &str = "no application with that id";

impl Admin {
    /// Lists applications with their members in creation order, one page.
    pub async fn list_applications(
        &self,
        page: &CreationPage,
    ) -> Result<Vec<ApplicationResponse>, ServiceError> {
        Ok(self
            .store
            .list_applications(page)
            .await?
            .iter()
            .map(application_response)
            .collect())
    }

    /// Shows one application with its members.
    pub async fn application(
        &self,
        id: &ApplicationId,
    ) -> Result<ApplicationResponse, ServiceError> {
        Ok(application_response(&self.application_record(id).await?))
    }

    /// Creates an application (without keys: `keys create --application`
    /// adds them).
    pub async fn create_application(
        &self,
        name: &str,
        members_only: bool,
    ) -> Result<ApplicationResponse, ServiceError> {
        let id = ApplicationId::new();
        let detail = serde_json::json!({ "name": name, "membersOnly": members_only });
        let change = self
            .change("application.create", id.as_str(), detail.clone())
            .on_failure("", detail);
        let result = async {
            let application = ApplicationRecord {
                id,
                name: validate_name(name)?,
                created_at: self.clock.now(),
                members_only,
            };
            change.store.create_application(&application).await?;
            Ok(application_response(&ApplicationWithMembers {
                application,
                members: Vec::new(),
            }))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Changes an application's name or members-only flag. Switching it on
    /// ends the sessions of every non-member in the application, on every
    /// server within a second.
    pub async fn update_application(
        &self,
        id: &ApplicationId,
        update: ApplicationUpdate,
    ) -> Result<ApplicationResponse, ServiceError> {
        let detail = serde_json::json!({
            "name": update.name,
            "membersOnly": update.members_only,
        });
        let change = self.change("application.update", id.as_str(), detail);
        let result = async {
            let update = ApplicationUpdate {
                name: update.name.as_deref().map(validate_name).transpose()?,
                members_only: update.members_only,
            };
            let updated = change
                .store
                .update_application(id, &update, self.clock.now())
                .await
                .map_err(not_found(NO_APPLICATION))?;
            Ok(application_response(&updated))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Makes the user of `email` a member of an application with `role`, or
    /// changes the role of a member.
    pub async fn add_application_member(
        &self,
        id: &ApplicationId,
        email: &str,
        role: ApplicationRole,
    ) -> Result<ApplicationResponse, ServiceError> {
        let account = normalize_email(email);
        let detail = serde_json::json!({ "email": account, "role": role.as_str() });
        let change = self.change("application.add_member", id.as_str(), detail);
        let result = async {
            self.application_record(id).await?;
            let user = self.user(&account).await?;
            let updated = change
                .store
                .set_application_member(id, &user.id, role, self.clock.now())
                .await
                .map_err(not_found(NO_APPLICATION))?;
            Ok(application_response(&updated))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Removes the user of `email` from an application's members; in a
    /// members-only application, the user's sessions there end (on every
    /// server within a second).
    pub async fn remove_application_member(
        &self,
        id: &ApplicationId,
        email: &str,
    ) -> Result<ApplicationResponse, ServiceError> {
        let account = normalize_email(email);
        let detail = serde_json::json!({ "email": account });
        let change = self.change("application.remove_member", id.as_str(), detail);
        let result = async {
            self.application_record(id).await?;
            let user = self.user(&account).await?;
            let updated = change
                .store
                .remove_application_member(id, &user.id, self.clock.now())
                .await
                .map_err(|error| match error {
                    StoreError::NotFound => ServiceError::refused_with(
                        ErrorCode::NotFound,
                        "that user is not a member of the application",
                    ),
                    other => other.into(),
                })?;
            Ok(application_response(&updated))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// The application `id` with its members; `not_found` if there is none.
    async fn application_record(
        &self,
        id: &ApplicationId,
    ) -> Result<ApplicationWithMembers, ServiceError> {
        self.store
            .application_with_members(id)
            .await?
            .ok_or_else(|| ServiceError::refused_with(ErrorCode::NotFound, NO_APPLICATION))
    }
}

/// The wire form of an application and its members.
pub fn application_response(found: &ApplicationWithMembers) -> ApplicationResponse {
    let application = &found.application;
    ApplicationResponse {
        id: application.id.to_string(),
        name: application.name.clone(),
        members_only: application.members_only,
        created_at: application.created_at,
        members: found
            .members
            .iter()
            .map(|member| ApplicationMemberResponse {
                email: member.email.clone(),
                role: member.role,
            })
            .collect(),
    }
}
