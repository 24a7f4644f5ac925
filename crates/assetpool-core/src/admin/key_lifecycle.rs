//! A key's lifecycle after its creation: disabling and enabling it, the
//! checks and audit detail of `keys update` (expiry, metadata, owner,
//! allow-list), and the reads of one application's keys (the web console's
//! owner view) and of filtered key lists (its key list), and the end of a
//! console session.

use super::{key_response, not_found, validate_email, validate_name, Admin};
use crate::allowed_networks::AllowedNetworks;
use crate::ids::{ApplicationId, KeyId};
use crate::key_metadata::KeyMetadata;
use crate::store::{
    ApiKeyRecord, ApiKeyUpdate, ConsoleSession, CreationPage, KeyFilter, StoreError,
};
use crate::ServiceError;
use assetpool_wire::ApiKeyResponse;

impl Admin {
    /// The keys of one application in creation order, one page.
    pub async fn list_application_api_keys(
        &self,
        application_id: &ApplicationId,
        page: &CreationPage,
    ) -> Result<Vec<ApiKeyResponse>, ServiceError> {
        let now = self.clock.now();
        let keys = self
            .store
            .list_application_api_keys(application_id, page)
            .await?;
        Ok(keys.iter().map(|key| key_response(key, now)).collect())
    }

    /// The keys `filter` admits now, in creation order, one page (the web
    /// console's key list: search, environment, application, status).
    pub async fn filter_api_keys(
        &self,
        filter: &KeyFilter,
        page: &CreationPage,
    ) -> Result<Vec<ApiKeyResponse>, ServiceError> {
        let now = self.clock.now();
        let keys = self.store.filter_api_keys(filter, now, page).await?;
        Ok(keys.iter().map(|key| key_response(key, now)).collect())
    }

    /// Ends a web console session (sign-out), audited as `console.sign_out`
    /// in the transaction that ends it.
    pub async fn end_console_session(&self, session: &ConsoleSession) -> Result<(), ServiceError> {
        let change = self.change(
            "console.sign_out",
            &session.user.email,
            serde_json::json!({ "session": session.id }),
        );
        let result = change
            .store
            .end_console_session(&session.id, self.clock.now())
            .await
            .map(|_| ())
            .map_err(ServiceError::from);
        self.settle(change, &result).await;
        result
    }

    /// A key's record, when it exists (the console checks its application
    /// before showing or changing it).
    pub async fn api_key_record(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>, ServiceError> {
        Ok(self.store.api_key(id).await?)
    }

    /// Now, by the clock of these operations (a lifetime given at the
    /// command line counts from it).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Disables a key (`disabled`) or enables it again. A disabled key is
    /// refused with `api_key_disabled`, and the tokens of the sessions
    /// opened through it with `token_revoked`, on every server within a
    /// second; enabling brings back the key and its live tokens. A revoked
    /// key can be neither (`invalid_request`); disabling a disabled key, or
    /// enabling an enabled one, changes nothing and succeeds.
    pub async fn set_api_key_disabled(
        &self,
        id: &KeyId,
        disabled: bool,
    ) -> Result<ApiKeyResponse, ServiceError> {
        let action = if disabled {
            "key.disable"
        } else {
            "key.enable"
        };
        let change = self.change(action, id.as_str(), serde_json::json!({}));
        let result = async {
            let now = self.clock.now();
            let key = change
                .store
                .set_api_key_disabled(id, disabled, now)
                .await
                .map_err(|error| match error {
                    StoreError::Conflict(_) => ServiceError::invalid_request(
                        "the key is revoked: it can be neither disabled nor enabled",
                    ),
                    other => not_found("no API key with that id")(other),
                })?;
            Ok(key_response(&key, now))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// `update` with its texts checked (name, owner) and its expiry judged
    /// against now: an expiry must lie in the future (stopping a key now is
    /// what disabling or revoking is for, and they say so in the audit log).
    pub(super) fn checked_update(
        &self,
        update: ApiKeyUpdate,
    ) -> Result<ApiKeyUpdate, ServiceError> {
        if let Some(Some(expires_at)) = update.expires_at {
            if expires_at <= self.clock.now() {
                return Err(ServiceError::invalid_request(
                    "the expiry must be in the future (disable or revoke a key to stop it now)",
                ));
            }
        }
        Ok(ApiKeyUpdate {
            name: update.name.as_deref().map(validate_name).transpose()?,
            owner: update
                .owner
                .map(|owner| owner.as_deref().map(validate_email).transpose())
                .transpose()?,
            ..update
        })
    }
}

/// The audit detail of a `key.update`: what it sets (`null`: cleared);
/// fields it leaves alone are absent.
pub(super) fn update_detail(update: &ApiKeyUpdate) -> serde_json::Value {
    let mut detail = serde_json::Map::new();
    detail.insert("name".to_owned(), serde_json::json!(update.name));
    detail.insert(
        "limitsChanged".to_owned(),
        serde_json::json!(update.limits.is_some()),
    );
    if let Some(expires_at) = update.expires_at {
        detail.insert("expiresAt".to_owned(), serde_json::json!(expires_at));
    }
    if let Some(metadata) = &update.metadata {
        detail.insert(
            "metadata".to_owned(),
            serde_json::json!(metadata.as_ref().map(KeyMetadata::as_map)),
        );
    }
    if let Some(owner) = &update.owner {
        detail.insert("owner".to_owned(), serde_json::json!(owner));
    }
    if let Some(allowed) = &update.allowed_networks {
        detail.insert(
            "allowedCidrs".to_owned(),
            serde_json::json!(allowed.as_ref().map(AllowedNetworks::to_strings)),
        );
    }
    if let Some(scopes) = &update.scopes {
        detail.insert(
            "scopes".to_owned(),
            serde_json::json!(scopes.as_ref().map(crate::ScopeSet::to_vec)),
        );
    }
    serde_json::Value::Object(detail)
}
