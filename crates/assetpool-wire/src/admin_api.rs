//! Request and response bodies specific to the admin HTTP API (`/admin/...`).
//!
//! Shapes shared with the command line (`ApiKeyResponse`, `UserResponse`,
//! `AlertResponse`, ...) live in `admin` and `monitoring`; here are the
//! request bodies and the pages that wrap lists.

use crate::{AlertResponse, ApiKeyResponse, AuditEntryResponse, SigningKeyResponse, UserResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Absent stays `None`; `null` becomes `Some(None)`; a value `Some(Some(v))`.
fn set_or_clear<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /admin/keys`: issue a key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCreateKeyRequest {
    /// Display name (1 to 200 printable characters).
    pub name: String,
    /// `development`, `staging` or `production` (or `dev`, `stg`, `prod`).
    pub environment: String,
    /// Existing application to add the key to (default: a new application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Lifetime in seconds (default: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Sustained request rate: `COUNT/s`, `COUNT/min` or `COUNT/h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// Requests allowed at once (default: the rate's count); needs `rateLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Quota per calendar period (UTC): `COUNT/hour`, `COUNT/day` or `COUNT/month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// Notes on the key: a JSON object of at most 4 KiB serialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The email address of the key's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Client networks the key may be used from (IPv4 or IPv6 CIDRs; a bare
    /// address is one host). Default: any address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_cidrs: Option<Vec<String>>,
    /// Scopes of the key (each 1 to 64 characters of `a-z 0-9 _ . : -`; at
    /// most 32). Absent or `null`: unrestricted; `[]`: restricted to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// `PATCH /admin/keys/{id}`: the fields given change, the others stay.
/// `null` removes a rate limit, quota or webhook.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUpdateKeyRequest {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New rate (`50/s`), or `null` to remove it.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub rate_limit: Option<Option<String>>,
    /// New burst (keeps the rate unless `rateLimit` is given too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// New quota (`100000/day`), or `null` to remove it.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub quota: Option<Option<String>>,
    /// Owner webhook URL (http or https) that receives the key's alerts, or
    /// `null` to remove it. Setting one answers a new signing secret once.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub webhook: Option<Option<String>>,
    /// New expiry (an RFC 3339 time in the future), or `null` for none. A
    /// rotated or revoked key's expiry cannot change.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// New notes (a JSON object of at most 4 KiB serialised, replacing the
    /// old ones), or `null` to clear them.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<serde_json::Value>>,
    /// New owner (an email address), or `null` to clear it.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    /// New allow-list of client networks (replacing the old one), or `null`
    /// to let any address use the key.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    /// The key's new scopes (replacing the old set), or `null` to make it
    /// unrestricted. Narrowing applies to live tokens within a second.
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Option<Vec<String>>>,
}

/// The answer of `PATCH /admin/keys/{id}`: the key, and a webhook's new
/// signing secret when one was just set (shown once).
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUpdateKeyResponse {
    /// The key after the change.
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The owner webhook's new signing secret (HMAC-SHA256 key). Shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl fmt::Debug for AdminUpdateKeyResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AdminUpdateKeyResponse")
            .field("key", &self.key)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// `POST /admin/keys/{id}/rotate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminRotateKeyRequest {
    /// Seconds the old key keeps working (default 86400; 0 rejects it at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<u64>,
}

/// `POST /admin/keys/{id}/revoke`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminRevokeKeyRequest {
    /// Why (kept with the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /admin/users`: create a user.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCreateUserRequest {
    /// Email address (the login name).
    pub email: String,
    /// Password (checked against the password policy).
    pub password: String,
    /// Whether the user may use the admin API.
    #[serde(default)]
    pub admin: bool,
    /// The user's scopes. Absent or `null`: unrestricted; `[]`: restricted to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

impl fmt::Debug for AdminCreateUserRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AdminCreateUserRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("admin", &self.admin)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// `PATCH /admin/users/{email}`: the fields given change, the others stay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUpdateUserRequest {
    /// The user's new scopes (replacing the old set), or `null` to make the
    /// user unrestricted. The user's live sessions granted a scope outside
    /// the new set are revoked (every server within a second).
    #[serde(
        default,
        deserialize_with = "set_or_clear",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Option<Vec<String>>>,
}

/// `POST /admin/users/{email}/password`: replace a user's password (their
/// sessions end).
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSetPasswordRequest {
    /// The new password (checked against the password policy).
    pub password: String,
}

impl fmt::Debug for AdminSetPasswordRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AdminSetPasswordRequest")
            .field("password", &"[redacted]")
            .finish()
    }
}

/// The answer of `POST /admin/users/{email}/unlock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUnlockResponse {
    /// The account (normalised email).
    pub email: String,
    /// How many login-failure counters were cleared.
    pub cleared: u64,
}

/// One page of API keys, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyPage {
    /// The keys.
    pub items: Vec<ApiKeyResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of users, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    /// The users.
    pub items: Vec<UserResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of alerts, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertPage {
    /// The alerts.
    pub items: Vec<AlertResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of the audit log, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntryResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One failed-login counter (`GET /admin/login-failures`): of an account and
/// an address (`pair`), of an address, or of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginFailureResponse {
    /// Which counter: `pair`, `address` or `account`.
    pub scope: String,
    /// The account (normalised email); `null` for an address counter.
    pub account: Option<String>,
    /// The client address (or network); `null` for an account counter.
    pub address: Option<String>,
    /// Failures in the current window.
    pub failures: u32,
    /// The latest failure.
    pub last_failure: DateTime<Utc>,
    /// The API key of the latest failure.
    pub api_key: Option<String>,
}

/// The failed-login counters (`GET /admin/login-failures`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginFailureList {
    /// The counters.
    pub items: Vec<LoginFailureResponse>,
}

/// `POST /admin/leak-check`: candidate texts (e.g. found by a secret
/// scanner) to check; never logged or echoed.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCheckLeakRequest {
    /// The candidates, in order.
    pub candidates: Vec<String>,
    /// Revoke the live keys found (audited).
    #[serde(default)]
    pub revoke: bool,
}

impl fmt::Debug for AdminCheckLeakRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AdminCheckLeakRequest")
            .field("candidates", &self.candidates.len())
            .field("revoke", &self.revoke)
            .finish()
    }
}

/// What one candidate is (never the candidate itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeakCheckResponse {
    /// The key's id, when the candidate is a key of this service.
    pub key_id: Option<String>,
    /// The key's status (after a revocation made by this check).
    pub status: Option<String>,
    /// The key's name.
    pub name: Option<String>,
    /// The key's environment.
    pub environment: Option<String>,
    /// Whether the candidate is a key of this service.
    pub known: bool,
    /// Whether the key was live (active, rotating or disabled) when checked.
    pub live: bool,
    /// Whether this check revoked it.
    pub revoked: bool,
}

/// The answer of `POST /admin/leak-check`: one entry per candidate, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeakCheckList {
    /// The entries.
    pub items: Vec<LeakCheckResponse>,
}

/// The answer of `GET /admin/audit/verify`: the check of the audit log's
/// hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerificationResponse {
    /// Entries checked (those of the chain).
    pub checked: u64,
    /// The chain covers the entries after this id; those up to it were
    /// written before the chain began.
    pub started_after: i64,
    /// The hash of the last entry.
    pub last_hash: String,
    /// The first break, when the chain is broken (`null` when it holds).
    pub broken: Option<String>,
}

/// The token-signing keys (few: never paginated).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyList {
    /// The keys, active and retired.
    pub items: Vec<SigningKeyResponse>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_value_differ() {
        let parse = |text: &str| -> AdminUpdateKeyRequest {
            serde_json::from_str(text).unwrap_or_default()
        };
        assert_eq!(parse("{}").rate_limit, None);
        assert_eq!(parse(r#"{"rateLimit": null}"#).rate_limit, Some(None));
        assert_eq!(
            parse(r#"{"rateLimit": "5/s"}"#).rate_limit,
            Some(Some("5/s".to_owned()))
        );
        assert_eq!(parse(r#"{"webhook": null}"#).webhook, Some(None));
        assert_eq!(parse(r#"{"allowedCidrs": null}"#).allowed_cidrs, Some(None));
        assert_eq!(parse(r#"{"metadata": null}"#).metadata, Some(None));
        assert_eq!(parse("{}").expires_at, None);
        assert_eq!(parse(r#"{"scopes": null}"#).scopes, Some(None));
        assert_eq!(
            parse(r#"{"scopes": ["a"]}"#).scopes,
            Some(Some(vec!["a".to_owned()]))
        );
    }

    #[test]
    fn secrets_are_not_in_debug() {
        let request = AdminCreateUserRequest {
            email: "a@example.test".into(),
            password: "hunter2hunter2".into(),
            admin: true,
            scopes: None,
        };
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
