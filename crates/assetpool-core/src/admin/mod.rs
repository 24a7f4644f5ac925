//! What support staff do: issue, rotate and revoke keys; manage users,
//! applications and their members, and signing keys. Used by the command line (and the admin API); works directly
//! on storage, so it is safe to use while servers run on the same database.

mod applications;
mod audit;
mod key_lifecycle;
mod leak_checks;
mod monitoring;
mod scopes;
mod signing_keys;

pub use applications::application_response;
pub use audit::AuditVerification;
pub use monitoring::{
    audit_response, login_failure_response, outcome_counts_add, usage_response, usage_series,
    validate_webhook_url, webhook_seal_id, OwnerWebhook, UsageSeries,
};
pub use scopes::UserScopesChanged;
pub use signing_keys::SealedSigningKeys;

use crate::allowed_networks::AllowedNetworks;
use crate::api_key::ApiKeySecret;
use crate::ids::{ApplicationId, KeyId, UserId};
use crate::key_metadata::KeyMetadata;
use crate::limits::KeyLimits;
use crate::password::{check_policy, normalize_email, PasswordHasher, DEFAULT_MIN_PASSWORD_CHARS};
use crate::scopes::ScopeSet;
use crate::sealer::KeySealer;
use crate::service::new_signing_key_record;
use crate::store::{
    ApiKeyRecord, ApiKeyUpdate, ApplicationRecord, CreationPage, NewAuditEntry, PendingAudit,
    SigningKeyRecord, Store, StoreError, ThrottleEntry, UserRecord,
};
use crate::token::CLOCK_LEEWAY_SECONDS;
use crate::webhook_target::WebhookTargets;
use crate::{Clock, Environment, ServiceError};
use assetpool_wire::{
    ApiKeyCreatedResponse, ApiKeyResponse, ErrorCode, SigningKeyResponse, SigningKeyStatus,
    UserResponse,
};
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use std::sync::Arc;

/// Default rotation grace period.
pub const DEFAULT_ROTATION_GRACE_SECONDS: i64 = 86_400;
/// Longest rotation grace period accepted (a year), by every command,
/// route and console form.
pub const MAX_ROTATION_GRACE_SECONDS: u64 = 31_536_000;
/// Token lifetime assumed for signing-key retirement when no server recorded one.
const DEFAULT_TOKEN_TTL_SECONDS: i64 = 86_400;
const MAX_NAME_CHARS: usize = 200;
const MAX_EMAIL_BYTES: usize = 320;

/// A request to issue a key.
#[derive(Debug, Clone)]
pub struct CreateApiKey {
    /// Display name.
    pub name: String,
    /// Environment.
    pub environment: Environment,
    /// Existing application, or `None` to create one.
    pub application_id: Option<ApplicationId>,
    /// Lifetime, if the key should expire.
    pub expires_in: Option<Duration>,
    /// Rate limit and quota.
    pub limits: KeyLimits,
    /// Support staff's notes.
    pub metadata: Option<KeyMetadata>,
    /// The owner's email address (checked and normalised here).
    pub owner: Option<String>,
    /// The client networks the key may be used from (`None`: any).
    pub allowed_networks: Option<AllowedNetworks>,
    /// What the key's application may do (`None`: unrestricted).
    pub scopes: Option<ScopeSet>,
}

impl CreateApiKey {
    /// A key named `name` in `environment`, in a new application, without
    /// expiry, limits, metadata, owner, allow-list or scopes.
    pub fn new(name: impl Into<String>, environment: Environment) -> Self {
        CreateApiKey {
            name: name.into(),
            environment,
            application_id: None,
            expires_in: None,
            limits: KeyLimits::default(),
            metadata: None,
            owner: None,
            allowed_networks: None,
            scopes: None,
        }
    }
}

/// A key just issued, with its secret (shown once).
#[derive(Debug)]
pub struct IssuedApiKey {
    /// The stored record.
    pub record: ApiKeyRecord,
    /// The secret.
    pub secret: ApiKeySecret,
}

impl IssuedApiKey {
    /// The wire form, the only one carrying the secret.
    pub fn to_response(&self) -> ApiKeyCreatedResponse {
        ApiKeyCreatedResponse {
            id: self.record.id.to_string(),
            key: self.secret.expose().to_owned(),
            name: self.record.name.clone(),
            environment: self.record.environment,
            application: self.record.application_id.to_string(),
            created_at: self.record.created_at,
            expires_at: self.record.expires_at,
            scopes: assetpool_wire::scope_list(self.record.scopes.as_ref()),
        }
    }
}

/// Who performs an admin operation, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Someone at the command line (the operating-system user).
    Cli {
        /// The operating-system user name.
        os_user: String,
    },
    /// An admin user over the admin HTTP API.
    Admin {
        /// User id.
        user_id: UserId,
        /// Email.
        email: String,
    },
    /// The owner of an application (role `owner`) in the web console.
    Owner {
        /// User id.
        user_id: UserId,
        /// Email.
        email: String,
    },
    /// The service itself (e.g. `leak-report` revoking a leaked key).
    Service {
        /// What acted.
        name: String,
    },
}

impl Actor {
    /// The audit log's name of the actor: `cli:<user>`, `admin:<email>`,
    /// `owner:<email>`, `service:<name>`.
    pub fn name(&self) -> String {
        match self {
            Actor::Cli { os_user } => format!("cli:{os_user}"),
            Actor::Admin { email, .. } => format!("admin:{email}"),
            Actor::Owner { email, .. } => format!("owner:{email}"),
            Actor::Service { name } => format!("service:{name}"),
        }
    }

    /// The actor of a user signed in to the web console: an admin as
    /// [`Actor::Admin`], anyone else (the owner of an application, or a
    /// user without console access, who can only sign in and out) as
    /// [`Actor::Owner`].
    pub fn console_user(user: &UserRecord) -> Actor {
        if user.admin {
            Actor::Admin {
                user_id: user.id.clone(),
                email: user.email.clone(),
            }
        } else {
            Actor::Owner {
                user_id: user.id.clone(),
                email: user.email.clone(),
            }
        }
    }

    /// The user's id, when the actor is an admin or an owner.
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Actor::Admin { user_id, .. } | Actor::Owner { user_id, .. } => Some(user_id),
            Actor::Cli { .. } | Actor::Service { .. } => None,
        }
    }
}

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    /// The entries.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// Most entries of one page.
pub const MAX_PAGE: u32 = 500;

/// Support staff's operations. Every change is recorded in the audit log,
/// with its actor ([`Admin::with_actor`]) and outcome.
pub struct Admin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    sealer: KeySealer,
    actor: Actor,
    webhook_targets: WebhookTargets,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Admin").finish_non_exhaustive()
    }
}

/// A change and its audit entry ([`Admin::change`]).
struct AuditedChange {
    /// The store to write the change in: its write transactions append the
    /// entry first.
    store: Arc<dyn Store>,
    pending: Arc<PendingAudit>,
    /// The target and detail a failure entry names.
    failure: (String, serde_json::Value),
}

impl AuditedChange {
    /// Names `target` and `detail` in the entry of a failure (for a change
    /// whose success entry names what the change would create).
    fn on_failure(mut self, target: &str, detail: serde_json::Value) -> Self {
        self.failure = (target.to_owned(), detail);
        self
    }
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |error| match error {
        StoreError::NotFound => ServiceError::refused_with(ErrorCode::NotFound, what),
        other => other.into(),
    }
}

impl Admin {
    /// Operations on `store`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
        sealer: KeySealer,
    ) -> Self {
        Admin {
            store,
            clock,
            hasher,
            sealer,
            actor: Actor::Cli {
                os_user: "unknown".to_owned(),
            },
            webhook_targets: WebhookTargets::default(),
        }
    }

    /// The same operations, letting owner webhooks point at `targets`
    /// (public addresses only by default).
    #[must_use]
    pub fn with_webhook_targets(mut self, targets: WebhookTargets) -> Self {
        self.webhook_targets = targets;
        self
    }

    /// The same operations, recorded in the audit log as done by `actor`.
    #[must_use]
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// Who the operations are recorded as done by.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The audit entry of an operation with `result`, as this actor, now.
    fn audit_entry<T>(
        &self,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
        result: &Result<T, ServiceError>,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at: self.clock.now(),
            actor: self.actor.name(),
            actor_id: self.actor.user_id().map(|id| id.to_string()),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: if result.is_ok() { "success" } else { "failure" }.to_owned(),
            error: result
                .as_ref()
                .err()
                .map(|error| error.code().as_str().to_owned()),
            detail: detail.to_string(),
        }
    }

    /// Appends an audit entry of its own for an operation's `result`: a
    /// failure, or an operation that changed nothing. A failure to write the
    /// entry is logged (the operation made no change for it to undo); for a
    /// failed operation only at `info`, since its caller reports the failure
    /// itself (often the same storage error).
    async fn audit<T>(
        &self,
        action: &str,
        target: &str,
        detail: serde_json::Value,
        result: &Result<T, ServiceError>,
    ) {
        let entry = self.audit_entry(action, target, &detail, result);
        if let Err(error) = self.store.append_audit(&entry).await {
            if result.is_ok() {
                tracing::error!(%error, action, target, "could not write the audit log");
            } else {
                tracing::info!(%error, action, target, "could not write the audit log");
            }
        }
    }

    /// A change about to be made: its success entry, appended by the
    /// transaction that writes the change (through [`AuditedChange::store`]),
    /// so that the change never lands without it. Settle it with
    /// [`Admin::settle`].
    fn change(&self, action: &str, target: &str, detail: serde_json::Value) -> AuditedChange {
        let entry = self.audit_entry(action, target, &detail, &Ok::<(), ServiceError>(()));
        let pending = PendingAudit::new(entry);
        AuditedChange {
            store: self.store.audited(pending.clone()),
            pending,
            failure: (target.to_owned(), detail),
        }
    }

    /// A view of the store whose write transactions append the success
    /// entry of `action` first (a change made outside `Admin`, such as a
    /// console sign-in, audited in its own transaction; nothing is written
    /// when it does not commit).
    pub(crate) fn audited_store(
        &self,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Arc<dyn Store> {
        self.change(action, target, detail).store
    }

    /// Completes the audit of `change` once its `result` is known: a success
    /// whose transaction appended the entry is done; a success that wrote
    /// nothing gets its entry now, and a failure (whose transaction, if any,
    /// rolled back with its entry) a failure entry.
    async fn settle<T>(&self, change: AuditedChange, result: &Result<T, ServiceError>) {
        if result.is_ok() && change.pending.appended() {
            return;
        }
        let entry = change.pending.entry();
        let (target, detail) = match result {
            Ok(_) => (entry.target.clone(), change.failure.1),
            Err(_) => change.failure,
        };
        self.audit(&entry.action, &target, detail, result).await;
    }

    /// Issues a key (creating an application unless one is named).
    pub async fn create_api_key(
        &self,
        request: CreateApiKey,
    ) -> Result<IssuedApiKey, ServiceError> {
        let detail = serde_json::json!({
            "name": request.name,
            "environment": request.environment.as_str(),
            "application": request.application_id.as_ref().map(ApplicationId::as_str),
            "expiresInSeconds": request.expires_in.map(|lifetime| lifetime.num_seconds()),
            "metadata": request.metadata.as_ref().map(KeyMetadata::as_map),
            "owner": request.owner,
            "allowedCidrs": request.allowed_networks.as_ref().map(AllowedNetworks::to_strings),
            "scopes": request.scopes.as_ref().map(ScopeSet::to_vec),
        });
        let id = KeyId::new();
        let change = self
            .change("key.create", id.as_str(), detail.clone())
            .on_failure("", detail);
        let result = self
            .create_api_key_unaudited(request, id, &change.store)
            .await;
        self.settle(change, &result).await;
        result
    }

    /// Issues key `id`, written in `store` (an audited one).
    async fn create_api_key_unaudited(
        &self,
        request: CreateApiKey,
        id: KeyId,
        store: &Arc<dyn Store>,
    ) -> Result<IssuedApiKey, ServiceError> {
        let name = validate_name(&request.name)?;
        let owner = request.owner.as_deref().map(validate_email).transpose()?;
        if request
            .expires_in
            .is_some_and(|lifetime| lifetime <= Duration::zero())
        {
            return Err(ServiceError::invalid_request(
                "the expiry must be a positive number of seconds",
            ));
        }
        let now = self.clock.now();
        let application_id = match request.application_id {
            Some(id) => {
                self.store
                    .application(&id)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::refused_with(
                            ErrorCode::NotFound,
                            "no application with that id",
                        )
                    })?
                    .id
            }
            None => {
                let application = ApplicationRecord {
                    id: ApplicationId::new(),
                    name: name.clone(),
                    created_at: now,
                    members_only: false,
                };
                self.store.create_application(&application).await?;
                application.id
            }
        };
        let secret = ApiKeySecret::generate(request.environment);
        let record = ApiKeyRecord {
            id,
            application_id,
            name,
            environment: request.environment,
            key_hash: secret.hash(),
            prefix: secret.prefix(),
            created_at: now,
            expires_at: request.expires_in.map(|lifetime| now + lifetime),
            revoked_at: None,
            revoked_reason: None,
            successor_id: None,
            last_used_at: None,
            limits: request.limits,
            disabled_at: None,
            metadata: request.metadata,
            owner,
            allowed_networks: request.allowed_networks,
            scopes: request.scopes,
        };
        store.insert_api_key(&record).await?;
        Ok(IssuedApiKey { record, secret })
    }

    /// Lists keys (optionally of one environment) in creation order, one page.
    pub async fn list_api_keys(
        &self,
        environment: Option<Environment>,
        page: &CreationPage,
    ) -> Result<Vec<ApiKeyResponse>, ServiceError> {
        let now = self.clock.now();
        let keys = self.store.list_api_keys(environment, page).await?;
        Ok(keys.iter().map(|key| key_response(key, now)).collect())
    }

    /// Shows one key.
    pub async fn api_key(&self, id: &KeyId) -> Result<ApiKeyResponse, ServiceError> {
        let key = self.store.api_key(id).await?.ok_or_else(|| {
            ServiceError::refused_with(ErrorCode::NotFound, "no API key with that id")
        })?;
        Ok(key_response(&key, self.clock.now()))
    }

    /// Revokes a key.
    pub async fn revoke_api_key(
        &self,
        id: &KeyId,
        reason: Option<&str>,
    ) -> Result<ApiKeyResponse, ServiceError> {
        let change = self.change(
            "key.revoke",
            id.as_str(),
            serde_json::json!({ "reason": reason }),
        );
        let result = async {
            let reason = reason.map(validate_name).transpose()?;
            let now = self.clock.now();
            let key = change
                .store
                .revoke_api_key(id, reason.as_deref(), now)
                .await
                .map_err(not_found("no API key with that id"))?;
            Ok(key_response(&key, now))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Changes what `update` names on a key (name, limits, expiry,
    /// metadata, owner, allow-list, scopes); servers apply it within a
    /// second (narrowed scopes to the key's live tokens too).
    pub async fn update_api_key(
        &self,
        id: &KeyId,
        update: ApiKeyUpdate,
    ) -> Result<ApiKeyResponse, ServiceError> {
        let change = self.change(
            "key.update",
            id.as_str(),
            key_lifecycle::update_detail(&update),
        );
        let result = async {
            let update = self.checked_update(update)?;
            let now = self.clock.now();
            let key = change
                .store
                .update_api_key(id, &update, now)
                .await
                .map_err(|error| match error {
                    StoreError::Conflict(_) => ServiceError::invalid_request(
                        "the expiry of a rotated or revoked key cannot change",
                    ),
                    other => not_found("no API key with that id")(other),
                })?;
            Ok(key_response(&key, now))
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// A key's current limits.
    pub async fn api_key_limits(&self, id: &KeyId) -> Result<KeyLimits, ServiceError> {
        let key = self.store.api_key(id).await?.ok_or_else(|| {
            ServiceError::refused_with(ErrorCode::NotFound, "no API key with that id")
        })?;
        Ok(key.limits)
    }

    /// The login-failure counters of one account (with its pairs), or of all.
    pub async fn login_throttles(
        &self,
        email: Option<&str>,
    ) -> Result<Vec<ThrottleEntry>, ServiceError> {
        let account = email.map(normalize_email);
        Ok(self.store.login_throttles(account.as_deref()).await?)
    }

    /// Clears an account's login-failure counters (every server at once: they
    /// live in storage). Returns how many counters were cleared.
    pub async fn unlock_user(&self, email: &str) -> Result<u64, ServiceError> {
        let account = normalize_email(email);
        let change = self.change("user.unlock", &account, serde_json::json!({}));
        let result = async {
            if account.is_empty() {
                return Err(ServiceError::invalid_request("the email is empty"));
            }
            Ok(change.store.clear_login_throttle(&account).await?)
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Issues a successor for a key; the old key works for `grace` more.
    pub async fn rotate_api_key(
        &self,
        id: &KeyId,
        grace: Duration,
    ) -> Result<IssuedApiKey, ServiceError> {
        let successor_id = KeyId::new();
        let change = self
            .change(
                "key.rotate",
                id.as_str(),
                serde_json::json!({
                    "graceSeconds": grace.num_seconds(),
                    "successor": successor_id,
                }),
            )
            .on_failure(
                id.as_str(),
                serde_json::json!({ "graceSeconds": grace.num_seconds(), "successor": null }),
            );
        let result = self
            .rotate_api_key_unaudited(id, grace, successor_id, &change.store)
            .await;
        self.settle(change, &result).await;
        result
    }

    /// Rotates key `id` to `successor_id`, written in `store` (an audited one).
    async fn rotate_api_key_unaudited(
        &self,
        id: &KeyId,
        grace: Duration,
        successor_id: KeyId,
        store: &Arc<dyn Store>,
    ) -> Result<IssuedApiKey, ServiceError> {
        if grace < Duration::zero() {
            return Err(ServiceError::invalid_request(
                "the grace period cannot be negative",
            ));
        }
        let now = self.clock.now();
        let old = self.store.api_key(id).await?.ok_or_else(|| {
            ServiceError::refused_with(ErrorCode::NotFound, "no API key with that id")
        })?;
        let secret = ApiKeySecret::generate(old.environment);
        let lifetime = old.expires_at.map(|expires_at| expires_at - old.created_at);
        let successor = ApiKeyRecord {
            id: successor_id,
            application_id: old.application_id.clone(),
            name: old.name.clone(),
            environment: old.environment,
            key_hash: secret.hash(),
            prefix: secret.prefix(),
            created_at: now,
            expires_at: lifetime.map(|lifetime| now + lifetime),
            revoked_at: None,
            revoked_reason: None,
            successor_id: None,
            last_used_at: None,
            limits: old.limits,
            disabled_at: None,
            metadata: old.metadata.clone(),
            owner: old.owner.clone(),
            allowed_networks: old.allowed_networks.clone(),
            scopes: old.scopes.clone(),
        };
        let record = store
            .rotate_api_key(id, &successor, now + grace, now)
            .await
            .map_err(|error| match error {
                StoreError::NotFound => {
                    ServiceError::refused_with(ErrorCode::NotFound, "no API key with that id")
                }
                StoreError::Conflict(_) => ServiceError::invalid_request(
                    "the key was already rotated, revoked, disabled or has expired",
                ),
                other => other.into(),
            })?;
        Ok(IssuedApiKey { record, secret })
    }

    /// Creates an unrestricted user.
    pub async fn create_user(
        &self,
        email: &str,
        password: SecretString,
        admin: bool,
    ) -> Result<UserResponse, ServiceError> {
        self.create_user_with(email, password, admin, None).await
    }

    /// Creates a user with `scopes` (`None`: unrestricted).
    pub async fn create_user_with(
        &self,
        email: &str,
        password: SecretString,
        admin: bool,
        scopes: Option<ScopeSet>,
    ) -> Result<UserResponse, ServiceError> {
        let target = normalize_email(email);
        let id = UserId::new();
        let listed = scopes.as_ref().map(ScopeSet::to_vec);
        let change = self
            .change(
                "user.create",
                &target,
                serde_json::json!({ "admin": admin, "user": id, "scopes": listed }),
            )
            .on_failure(
                &target,
                serde_json::json!({ "admin": admin, "user": null, "scopes": listed }),
            );
        let new_user = NewUser {
            email,
            admin,
            scopes,
        };
        let result = self
            .create_user_unaudited(new_user, password, id, &change.store)
            .await;
        self.settle(change, &result).await;
        result
    }

    /// Creates user `id`, written in `store` (an audited one).
    async fn create_user_unaudited(
        &self,
        new_user: NewUser<'_>,
        password: SecretString,
        id: UserId,
        store: &Arc<dyn Store>,
    ) -> Result<UserResponse, ServiceError> {
        let NewUser {
            email,
            admin,
            scopes,
        } = new_user;
        let email = validate_email(email)?;
        let password_hash = self.hash_new_password(password).await?;
        let user = UserRecord {
            id,
            email,
            password_hash,
            admin,
            disabled: false,
            created_at: self.clock.now(),
            password_version: 0,
            scopes,
        };
        store
            .create_user(&user)
            .await
            .map_err(|error| match error {
                StoreError::Conflict(_) => {
                    ServiceError::invalid_request("a user with that email already exists")
                }
                other => other.into(),
            })?;
        Ok(user_response(&user))
    }

    /// Replaces a user's password and ends all the user's sessions.
    pub async fn set_password(
        &self,
        email: &str,
        password: SecretString,
    ) -> Result<(), ServiceError> {
        let change = self.change(
            "user.set_password",
            &normalize_email(email),
            serde_json::json!({}),
        );
        let result = async {
            let user = self.user(email).await?;
            let password_hash = self.hash_new_password(password).await?;
            change
                .store
                .set_password(&user.id, &password_hash, self.clock.now())
                .await?;
            Ok(())
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Disables (ending all sessions) or enables a user.
    pub async fn set_user_disabled(&self, email: &str, disabled: bool) -> Result<(), ServiceError> {
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        let change = self.change(action, &normalize_email(email), serde_json::json!({}));
        let result = async {
            let user = self.user(email).await?;
            change
                .store
                .set_user_disabled(&user.id, disabled, self.clock.now())
                .await?;
            Ok(())
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// The user of `email`; `not_found` if there is none.
    pub async fn show_user(&self, email: &str) -> Result<UserResponse, ServiceError> {
        Ok(user_response(&self.user(email).await?))
    }

    /// Lists users in creation order, one page.
    pub async fn list_users(&self, page: &CreationPage) -> Result<Vec<UserResponse>, ServiceError> {
        Ok(self
            .store
            .list_users(page)
            .await?
            .iter()
            .map(user_response)
            .collect())
    }

    /// Lists signing keys.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyResponse>, ServiceError> {
        Ok(self
            .store
            .signing_keys()
            .await?
            .iter()
            .map(signing_key_response)
            .collect())
    }

    /// Starts signing with a new key; the old one stays published until its
    /// last token has expired.
    pub async fn rotate_signing_key(&self) -> Result<SigningKeyResponse, ServiceError> {
        let now = self.clock.now();
        let record = new_signing_key_record(now, &self.sealer);
        let kid = record
            .as_ref()
            .map_or_else(|_| String::new(), |record| record.kid.to_string());
        let change = self
            .change("signing_key.rotate", &kid, serde_json::json!({}))
            .on_failure("", serde_json::json!({}));
        let result = async {
            self.rotate_signing_key_unaudited(record?, &change.store)
                .await
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// Starts signing with `record`, written in `store` (an audited one).
    async fn rotate_signing_key_unaudited(
        &self,
        record: SigningKeyRecord,
        store: &Arc<dyn Store>,
    ) -> Result<SigningKeyResponse, ServiceError> {
        let now = record.created_at;
        let existing = self.store.signing_keys().await?;
        if !self.sealer.encrypts()
            && existing
                .iter()
                .any(|key| KeySealer::is_encrypted(&key.sealed_private_key))
        {
            return Err(ServiceError::Internal(
                crate::sealer::SealError::KeyEncryptionKeyMissing.to_string(),
            ));
        }
        let longest = self.store.longest_token_ttl().await?;
        let ttl = if longest > 0 {
            longest
        } else {
            DEFAULT_TOKEN_TTL_SECONDS
        };
        let retire_until = now + Duration::seconds(ttl + CLOCK_LEEWAY_SECONDS);
        store.rotate_signing_key(&record, retire_until).await?;
        Ok(signing_key_response(&record))
    }

    async fn user(&self, email: &str) -> Result<UserRecord, ServiceError> {
        self.store
            .user_by_email(&normalize_email(email))
            .await?
            .ok_or_else(|| {
                ServiceError::refused_with(ErrorCode::NotFound, "no user with that email")
            })
    }

    async fn hash_new_password(&self, password: SecretString) -> Result<String, ServiceError> {
        use secrecy::ExposeSecret as _;
        check_policy(password.expose_secret(), DEFAULT_MIN_PASSWORD_CHARS)
            .map_err(|error| ServiceError::invalid_request(error.to_string()))?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            let hash = hasher.hash(&password);
            // A blocking thread, not one of the hashing pool's.
            crate::password::release_working_memory();
            hash
        })
        .await
        .map_err(|error| ServiceError::Internal(error.to_string()))?
        .map_err(|error| ServiceError::Internal(error.to_string()))
    }
}

/// A user to create, besides the password.
struct NewUser<'a> {
    email: &'a str,
    admin: bool,
    scopes: Option<ScopeSet>,
}

fn validate_name(name: &str) -> Result<String, ServiceError> {
    let trimmed = name.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_NAME_CHARS
        || trimmed.chars().any(char::is_control)
    {
        return Err(ServiceError::invalid_request(
            "names and reasons must be 1 to 200 printable characters",
        ));
    }
    Ok(trimmed.to_owned())
}

fn validate_email(email: &str) -> Result<String, ServiceError> {
    let normalized = normalize_email(email);
    let valid = normalized.len() <= MAX_EMAIL_BYTES
        && normalized.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !normalized
            .chars()
            .any(|character| character.is_whitespace() || character.is_control());
    if valid {
        Ok(normalized)
    } else {
        Err(ServiceError::invalid_request(
            "the email address is not valid",
        ))
    }
}

/// The wire form of a key at `now`.
pub fn key_response(key: &ApiKeyRecord, now: DateTime<Utc>) -> ApiKeyResponse {
    ApiKeyResponse {
        id: key.id.to_string(),
        name: key.name.clone(),
        environment: key.environment,
        application: key.application_id.to_string(),
        status: key.status(now),
        created_at: key.created_at,
        expires_at: key.expires_at,
        last_used_at: key.last_used_at,
        prefix: key.prefix.clone(),
        revoked_at: key.revoked_at,
        revoked_reason: key.revoked_reason.clone(),
        successor: key.successor_id.as_ref().map(KeyId::to_string),
        rate_limit: key.limits.rate.map(|rate| rate.to_string()),
        burst: key.limits.rate.map(|rate| rate.burst),
        quota: key.limits.quota.map(|quota| quota.to_string()),
        disabled_at: key.disabled_at,
        metadata: key
            .metadata
            .as_ref()
            .map(|metadata| metadata.as_map().clone()),
        owner: key.owner.clone(),
        allowed_cidrs: key
            .allowed_networks
            .as_ref()
            .map(AllowedNetworks::to_strings),
        scopes: assetpool_wire::scope_list(key.scopes.as_ref()),
    }
}

/// The wire form of a user.
pub fn user_response(user: &UserRecord) -> UserResponse {
    UserResponse {
        id: user.id.to_string(),
        email: user.email.clone(),
        admin: user.admin,
        created_at: user.created_at,
        disabled: user.disabled,
        scopes: assetpool_wire::scope_list(user.scopes.as_ref()),
    }
}

/// The wire form of a signing key.
pub fn signing_key_response(key: &SigningKeyRecord) -> SigningKeyResponse {
    SigningKeyResponse {
        kid: key.kid.to_string(),
        algorithm: key.algorithm.clone(),
        status: if key.retired_at.is_some() {
            SigningKeyStatus::Retired
        } else {
            SigningKeyStatus::Active
        },
        created_at: key.created_at,
        retires_at: key.retires_at,
    }
}
