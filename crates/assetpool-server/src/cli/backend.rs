//! Where an admin command acts: on the database ([`Admin`] from core), or
//! on a running server over its admin API ([`RemoteAdmin`], `--server`).
//! Both arms of each operation return the same wire type, so every command
//! prints from one copy of its output code.

use super::remote::{segment, RemoteAdmin};
use assetpool_core::admin::{
    login_failure_response, Admin, CreateApiKey, Listed, UserScopesChanged,
};
use assetpool_core::ids::{AlertId, ApplicationId, KeyId, SigningKeyId};
use assetpool_core::period::Period;
use assetpool_core::store::{ApplicationUpdate, CreationPage, UsageResolution};
use assetpool_core::{ApplicationRole, Environment, ScopeSet};
use assetpool_wire::{
    AdminAddMemberRequest, AdminCheckLeakRequest, AdminCreateApplicationRequest,
    AdminCreateKeyRequest, AdminCreateUserRequest, AdminRevokeKeyRequest, AdminRotateKeyRequest,
    AdminSetPasswordRequest, AdminUnlockResponse, AdminUpdateApplicationRequest,
    AdminUpdateUserRequest, AlertResponse, ApiKeyCreatedResponse, ApiKeyResponse,
    ApplicationResponse, AuditEntryResponse, AuditVerificationResponse, KeyUsageResponse,
    LeakCheckList, LeakCheckResponse, LoginFailureList, LoginFailureResponse, SigningKeyList,
    SigningKeyResponse, UserResponse,
};
use secrecy::{ExposeSecret as _, SecretString};

/// Candidates per request of `keys check-leak` over HTTP (a key is about
/// 50 bytes: a body stays well under the 16 KiB limit).
const LEAK_CHECK_BATCH: usize = 100;

/// The admin operations of the commands, on the database or over HTTP.
pub enum Backend {
    /// On the database.
    Direct(Box<Admin>),
    /// On a running server (`--server`).
    Remote(RemoteAdmin),
}

/// The JSON list of the scopes of a set (`None`: unrestricted).
fn scope_list(scopes: Option<&ScopeSet>) -> Option<Vec<String>> {
    scopes.map(ScopeSet::to_vec)
}

impl Backend {
    /// Issues a key.
    pub async fn create_api_key(
        &self,
        request: CreateApiKey,
    ) -> anyhow::Result<ApiKeyCreatedResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.create_api_key(request).await?.to_response()),
            Backend::Remote(remote) => {
                let body = AdminCreateKeyRequest {
                    name: request.name,
                    environment: request.environment.to_string(),
                    application: request.application_id.map(|id| id.to_string()),
                    expires_in: request
                        .expires_in
                        .and_then(|lifetime| u64::try_from(lifetime.num_seconds()).ok()),
                    rate_limit: request.limits.rate.map(|rate| rate.to_string()),
                    burst: request.limits.rate.map(|rate| rate.burst),
                    quota: request.limits.quota.map(|quota| quota.to_string()),
                    metadata: request
                        .metadata
                        .map(|metadata| serde_json::Value::Object(metadata.as_map().clone())),
                    owner: request.owner,
                    allowed_cidrs: request
                        .allowed_networks
                        .map(|networks| networks.to_strings()),
                    scopes: scope_list(request.scopes.as_ref()),
                };
                remote.post("/admin/keys", Some(&body)).await
            }
        }
    }

    /// Every key (of one environment), oldest first.
    pub async fn list_api_keys(
        &self,
        environment: Option<Environment>,
    ) -> anyhow::Result<Vec<ApiKeyResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin
                .list_api_keys(environment, &CreationPage::all())
                .await?),
            Backend::Remote(remote) => {
                let query: Vec<(&str, String)> = environment
                    .map(|environment| ("environment", environment.to_string()))
                    .into_iter()
                    .collect();
                remote.list_all("/admin/keys", &query).await
            }
        }
    }

    /// One key.
    pub async fn api_key(&self, id: &KeyId) -> anyhow::Result<ApiKeyResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.api_key(id).await?),
            Backend::Remote(remote) => remote.get(&key_path(id, "")).await,
        }
    }

    /// Revokes a key.
    pub async fn revoke_api_key(
        &self,
        id: &KeyId,
        reason: Option<&str>,
    ) -> anyhow::Result<ApiKeyResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.revoke_api_key(id, reason).await?),
            Backend::Remote(remote) => {
                let body = AdminRevokeKeyRequest {
                    reason: reason.map(str::to_owned),
                };
                remote.post(&key_path(id, "/revoke"), Some(&body)).await
            }
        }
    }

    /// Issues a key's successor; the old one works `grace_seconds` more.
    pub async fn rotate_api_key(
        &self,
        id: &KeyId,
        grace_seconds: u64,
    ) -> anyhow::Result<ApiKeyCreatedResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin
                .rotate_api_key(id, super::keys::seconds(grace_seconds))
                .await?
                .to_response()),
            Backend::Remote(remote) => {
                let body = AdminRotateKeyRequest {
                    grace: Some(grace_seconds),
                };
                remote.post(&key_path(id, "/rotate"), Some(&body)).await
            }
        }
    }

    /// Disables or enables a key.
    pub async fn set_api_key_disabled(
        &self,
        id: &KeyId,
        disabled: bool,
    ) -> anyhow::Result<ApiKeyResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.set_api_key_disabled(id, disabled).await?),
            Backend::Remote(remote) => {
                let action = if disabled { "/disable" } else { "/enable" };
                remote.post(&key_path(id, action), None::<&()>).await
            }
        }
    }

    /// A key's usage over the last `since`, in `bucket`s.
    pub async fn key_usage(
        &self,
        id: &KeyId,
        bucket: UsageResolution,
        since: Period,
    ) -> anyhow::Result<KeyUsageResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.key_usage(id, bucket, since.duration()).await?),
            Backend::Remote(remote) => {
                let query = [
                    ("since", since.to_string()),
                    ("bucket", bucket.as_str().to_owned()),
                ];
                remote.get_with(&key_path(id, "/usage"), &query).await
            }
        }
    }

    /// What each candidate is; with `revoke`, the live keys are revoked.
    /// Over HTTP the candidates go in bodies of at most [`LEAK_CHECK_BATCH`].
    pub async fn check_leaked_keys(
        &self,
        candidates: &[String],
        revoke: bool,
    ) -> anyhow::Result<Vec<LeakCheckResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin.check_leaked_keys(candidates, revoke).await?),
            Backend::Remote(remote) => {
                let mut checks = Vec::with_capacity(candidates.len());
                for batch in candidates.chunks(LEAK_CHECK_BATCH) {
                    let body = AdminCheckLeakRequest {
                        candidates: batch.to_vec(),
                        revoke,
                    };
                    let answer: LeakCheckList =
                        remote.post("/admin/leak-check", Some(&body)).await?;
                    checks.extend(answer.items);
                }
                Ok(checks)
            }
        }
    }

    /// Creates a user.
    pub async fn create_user(
        &self,
        email: &str,
        password: SecretString,
        admin_user: bool,
        scopes: Option<ScopeSet>,
    ) -> anyhow::Result<UserResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin
                .create_user_with(email, password, admin_user, scopes)
                .await?),
            Backend::Remote(remote) => {
                let body = AdminCreateUserRequest {
                    email: email.to_owned(),
                    password: password.expose_secret().to_owned(),
                    admin: admin_user,
                    scopes: scope_list(scopes.as_ref()),
                };
                remote.post("/admin/users", Some(&body)).await
            }
        }
    }

    /// Replaces a user's scopes. Over HTTP the count of revoked sessions is
    /// not answered: it is 0 there.
    pub async fn set_user_scopes(
        &self,
        email: &str,
        scopes: Option<ScopeSet>,
    ) -> anyhow::Result<UserScopesChanged> {
        match self {
            Backend::Direct(admin) => Ok(admin.set_user_scopes(email, scopes).await?),
            Backend::Remote(remote) => {
                let body = AdminUpdateUserRequest {
                    scopes: Some(scope_list(scopes.as_ref())),
                };
                let user = remote.patch(&user_path(email, ""), &body).await?;
                Ok(UserScopesChanged {
                    user,
                    sessions_revoked: 0,
                })
            }
        }
    }

    /// Replaces a user's password (their sessions end).
    pub async fn set_password(&self, email: &str, password: SecretString) -> anyhow::Result<()> {
        match self {
            Backend::Direct(admin) => Ok(admin.set_password(email, password).await?),
            Backend::Remote(remote) => {
                let body = AdminSetPasswordRequest {
                    password: password.expose_secret().to_owned(),
                };
                let _: UserResponse = remote
                    .post(&user_path(email, "/password"), Some(&body))
                    .await?;
                Ok(())
            }
        }
    }

    /// Disables or enables a user.
    pub async fn set_user_disabled(&self, email: &str, disabled: bool) -> anyhow::Result<()> {
        match self {
            Backend::Direct(admin) => Ok(admin.set_user_disabled(email, disabled).await?),
            Backend::Remote(remote) => {
                let action = if disabled { "disable" } else { "enable" };
                let path = user_path(email, &format!("/{action}"));
                let _: UserResponse = remote.post(&path, None::<&()>).await?;
                Ok(())
            }
        }
    }

    /// Every user, oldest first.
    pub async fn list_users(&self) -> anyhow::Result<Vec<UserResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin.list_users(&CreationPage::all()).await?),
            Backend::Remote(remote) => remote.list_all("/admin/users", &[]).await,
        }
    }

    /// Clears a user's login-failure counters; how many there were.
    pub async fn unlock_user(&self, email: &str) -> anyhow::Result<u64> {
        match self {
            Backend::Direct(admin) => Ok(admin.unlock_user(email).await?),
            Backend::Remote(remote) => {
                let path = user_path(email, "/unlock");
                let answer: AdminUnlockResponse = remote.post(&path, None::<&()>).await?;
                Ok(answer.cleared)
            }
        }
    }

    /// The failed-login counters of one account and its addresses, or all.
    pub async fn login_failures(
        &self,
        email: Option<&str>,
    ) -> anyhow::Result<Vec<LoginFailureResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin
                .login_throttles(email)
                .await?
                .iter()
                .map(login_failure_response)
                .collect()),
            Backend::Remote(remote) => {
                let query: Vec<(&str, String)> = email
                    .map(|email| ("email", email.to_owned()))
                    .into_iter()
                    .collect();
                let list: LoginFailureList =
                    remote.get_with("/admin/login-failures", &query).await?;
                Ok(list.items)
            }
        }
    }

    /// Every application with its members, oldest first.
    pub async fn list_applications(&self) -> anyhow::Result<Vec<ApplicationResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin.list_applications(&CreationPage::all()).await?),
            Backend::Remote(remote) => remote.list_all("/admin/applications", &[]).await,
        }
    }

    /// One application.
    pub async fn application(&self, id: &ApplicationId) -> anyhow::Result<ApplicationResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.application(id).await?),
            Backend::Remote(remote) => remote.get(&application_path(id, "")).await,
        }
    }

    /// Creates an application.
    pub async fn create_application(
        &self,
        name: &str,
        members_only: bool,
    ) -> anyhow::Result<ApplicationResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.create_application(name, members_only).await?),
            Backend::Remote(remote) => {
                let body = AdminCreateApplicationRequest {
                    name: name.to_owned(),
                    members_only: Some(members_only),
                };
                remote.post("/admin/applications", Some(&body)).await
            }
        }
    }

    /// Changes an application.
    pub async fn update_application(
        &self,
        id: &ApplicationId,
        update: ApplicationUpdate,
    ) -> anyhow::Result<ApplicationResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.update_application(id, update).await?),
            Backend::Remote(remote) => {
                let body = AdminUpdateApplicationRequest {
                    name: update.name,
                    members_only: update.members_only,
                };
                remote.patch(&application_path(id, ""), &body).await
            }
        }
    }

    /// Adds a member to an application (or changes their role).
    pub async fn add_application_member(
        &self,
        id: &ApplicationId,
        email: &str,
        role: ApplicationRole,
    ) -> anyhow::Result<ApplicationResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.add_application_member(id, email, role).await?),
            Backend::Remote(remote) => {
                let body = AdminAddMemberRequest {
                    email: email.to_owned(),
                    role: Some(role.to_string()),
                };
                remote
                    .post(&application_path(id, "/members"), Some(&body))
                    .await
            }
        }
    }

    /// Removes a member from an application.
    pub async fn remove_application_member(
        &self,
        id: &ApplicationId,
        email: &str,
    ) -> anyhow::Result<ApplicationResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.remove_application_member(id, email).await?),
            Backend::Remote(remote) => {
                let path = application_path(id, &format!("/members/{}", segment(email)));
                remote.delete(&path).await
            }
        }
    }

    /// One page of the alerts last seen within `since`, newest first.
    pub async fn list_alerts(
        &self,
        since: Option<Period>,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Listed<AlertResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin
                .list_alerts(since.map(Period::duration), before, limit)
                .await?),
            Backend::Remote(remote) => {
                let query = since
                    .map(|since| ("since", since.to_string()))
                    .into_iter()
                    .collect();
                let (items, next_before) = remote
                    .sequence_page("/admin/alerts", query, before, limit)
                    .await?;
                Ok(Listed { items, next_before })
            }
        }
    }

    /// Acknowledges an alert.
    pub async fn ack_alert(&self, id: &AlertId) -> anyhow::Result<AlertResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.ack_alert(id).await?),
            Backend::Remote(remote) => {
                let path = format!("/admin/alerts/{}/ack", segment(id.as_str()));
                remote.post(&path, None::<&()>).await
            }
        }
    }

    /// One page of the audit log, newest first.
    pub async fn list_audit(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Listed<AuditEntryResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin.list_audit(before, limit).await?),
            Backend::Remote(remote) => {
                let (items, next_before) = remote
                    .sequence_page("/admin/audit", Vec::new(), before, limit)
                    .await?;
                Ok(Listed { items, next_before })
            }
        }
    }

    /// The check of the audit log's hash chain.
    pub async fn verify_audit(&self) -> anyhow::Result<AuditVerificationResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.verify_audit().await?.to_response()),
            Backend::Remote(remote) => remote.get("/admin/audit/verify").await,
        }
    }

    /// Revokes a signing key at once.
    pub async fn revoke_signing_key(
        &self,
        kid: &SigningKeyId,
    ) -> anyhow::Result<SigningKeyResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.revoke_signing_key(kid).await?),
            Backend::Remote(remote) => {
                let path = format!("/admin/signing-keys/{}/revoke", segment(kid.as_str()));
                remote.post(&path, None::<&()>).await
            }
        }
    }

    /// The signing keys.
    pub async fn signing_keys(&self) -> anyhow::Result<Vec<SigningKeyResponse>> {
        match self {
            Backend::Direct(admin) => Ok(admin.signing_keys().await?),
            Backend::Remote(remote) => {
                let list: SigningKeyList = remote.get("/admin/signing-keys").await?;
                Ok(list.items)
            }
        }
    }

    /// Signs new tokens with a new key.
    pub async fn rotate_signing_key(&self) -> anyhow::Result<SigningKeyResponse> {
        match self {
            Backend::Direct(admin) => Ok(admin.rotate_signing_key().await?),
            Backend::Remote(remote) => remote.post("/admin/signing-keys/rotate", None::<&()>).await,
        }
    }
}

/// `/admin/keys/{id}` followed by `rest`.
fn key_path(id: &KeyId, rest: &str) -> String {
    format!("/admin/keys/{}{rest}", segment(id.as_str()))
}

/// `/admin/users/{email}` followed by `rest`.
fn user_path(email: &str, rest: &str) -> String {
    format!("/admin/users/{}{rest}", segment(email))
}

/// `/admin/applications/{id}` followed by `rest`.
fn application_path(id: &ApplicationId, rest: &str) -> String {
    format!("/admin/applications/{}{rest}", segment(id.as_str()))
}
