//! Shapes printed by the admin commands (`--json`) and served by the admin API.

use crate::Environment;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle state of an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyStatus {
    /// Usable.
    Active,
    /// Replaced by a successor, still usable until its grace period ends.
    Rotating,
    /// Revoked by support staff.
    Revoked,
    /// Past its expiry or its rotation grace period.
    Expired,
    /// Disabled by support staff until enabled again (revoked and expired win).
    Disabled,
}

impl ApiKeyStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyStatus::Active => "active",
            ApiKeyStatus::Rotating => "rotating",
            ApiKeyStatus::Revoked => "revoked",
            ApiKeyStatus::Expired => "expired",
            ApiKeyStatus::Disabled => "disabled",
        }
    }
}

impl fmt::Display for ApiKeyStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A newly issued key, the only place its secret is ever shown.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreatedResponse {
    /// Key id.
    pub id: String,
    /// The secret key. Shown once.
    pub key: String,
    /// Key name.
    pub name: String,
    /// The key's environment.
    pub environment: Environment,
    /// The application the key belongs to.
    pub application: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry time, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's scopes, sorted; `null` when unrestricted.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl fmt::Debug for ApiKeyCreatedResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ApiKeyCreatedResponse")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .field("name", &self.name)
            .field("environment", &self.environment)
            .field("application", &self.application)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What is known of a key, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    /// Key id.
    pub id: String,
    /// Key name.
    pub name: String,
    /// The key's environment.
    pub environment: Environment,
    /// The application the key belongs to.
    pub application: String,
    /// Lifecycle state now.
    pub status: ApiKeyStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry time (for a rotated key: the end of its grace period), if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last time the key authenticated a request, if ever.
    pub last_used_at: Option<DateTime<Utc>>,
    /// A non-secret prefix of the key, enough to recognise it.
    pub prefix: String,
    /// When the key was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why the key was revoked, if a reason was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    /// The key that replaced this one, if it was rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// Sustained request rate (`50/s`, `3000/min`, `100/h`), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// Requests allowed at once, with a rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Quota per calendar period (`100000/day`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// When the key was disabled, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Support staff's notes on the key: a JSON object, or `null`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The email address of the key's owner, or `null`.
    #[serde(default)]
    pub owner: Option<String>,
    /// The client networks the key may be used from (normalised CIDRs), or
    /// `null` when any address may use it.
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
    /// What the key's application may do: its scopes, sorted; `null` when unrestricted.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    /// User id.
    pub id: String,
    /// Email address (lowercase).
    pub email: String,
    /// Whether the user may use the admin API.
    pub admin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// What the user may do: their scopes, sorted; `null` when unrestricted.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// Lifecycle state of a token-signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SigningKeyStatus {
    /// Signs new tokens.
    Active,
    /// No longer signs; still published until its tokens have expired.
    Retired,
}

/// A token-signing key (public facts only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyResponse {
    /// Key id, as in the tokens' `kid` header.
    pub kid: String,
    /// Always `EdDSA`.
    pub algorithm: String,
    /// Active or retired.
    pub status: SigningKeyStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// For a retired key: when its last token expires and it leaves the JWKS.
    pub retires_at: Option<DateTime<Utc>>,
}
