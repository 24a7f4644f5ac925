//! The export format: all durable state as JSON lines, for moving between
//! storage backends (`assetpool export` / `assetpool import`).
//!
//! An export is one [`ExportHeader`] line,
//! `{"type":"header","format":"assetpool-export","version":1}`, then one
//! [`ExportRecord`] per line, tagged by `type`: `setting`, `application`,
//! `api_key`, `user`, `application_member`, `signing_key`, `session`,
//! `refresh_token`, `alert`, `audit_entry`, `audit_chain`, in that order (so
//! that every reference points to an earlier line). The audit log moves
//! whole, hash chain included: each `audit_entry` keeps its position (`seq`)
//! and hashes, and the one `audit_chain` line carries where the chain starts
//! and ends, so `assetpool audit verify` passes on the new database.
//!
//! Field encodings:
//! - times are integers, milliseconds since the Unix epoch (UTC), exactly as
//!   storage keeps them, so a round trip loses nothing;
//! - secret hashes (API keys, refresh tokens) are the SHA-256 digest as 64
//!   lowercase hex characters ([`SecretHash::to_hex`]);
//! - password hashes are Argon2id PHC strings and private signing keys are
//!   sealed as stored ([`crate::KeySealer`]); the same key-encryption key is
//!   needed after the move;
//! - public keys are standard base64 (with padding);
//! - environments are their full names (`production`);
//! - a field added to a kind after its first version has a default, so an
//!   older export still reads (`members_only`: false).
//! - scopes (of keys, users and sessions) are their text form, the scopes
//!   separated by spaces (`"orders:read orders:write"`; `""` restricts to
//!   none); the field is absent when unrestricted.
//!
//! Unknown fields are refused, so a typo does not silently drop data. No
//! plaintext secret is ever part of an export, and `Debug` shows neither
//! password hashes nor sealed keys.

use crate::allowed_networks::AllowedNetworks;
use crate::ids::{AlertId, ApplicationId, KeyId, SessionId, SigningKeyId, UserId};
use crate::key_metadata::KeyMetadata;
use crate::limits::{KeyLimits, Quota, QuotaPeriod, RateLimit};
use crate::store::{
    AlertRecord, ApiKeyRecord, ApplicationRecord, AuditChainHead, AuditLink, SigningKeyRecord,
    UserRecord,
};
use crate::{Environment, ScopeSet, SecretHash};
use assetpool_wire::ApplicationRole;
use chrono::{DateTime, Utc};
use encoding::{allowed_networks, base64_bytes, hex_hash, key_metadata, millis, optional_millis};
use serde::{Deserialize, Serialize};
use std::fmt;

mod encoding;

/// The `format` of the header line.
pub const EXPORT_FORMAT: &str = "assetpool-export";
/// The version of the format written, and the only one read.
pub const EXPORT_VERSION: u32 = 1;

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportHeader {
    /// `{"type":"header","format":"assetpool-export","version":1}`.
    Header {
        /// Always [`EXPORT_FORMAT`].
        format: String,
        /// [`EXPORT_VERSION`] when written by this version.
        version: u32,
    },
}

impl ExportHeader {
    /// The header of the version written here.
    pub fn current() -> Self {
        ExportHeader::Header {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
        }
    }

    /// Checks that this header announces an export this version can read.
    pub fn check(&self) -> Result<(), String> {
        let ExportHeader::Header { format, version } = self;
        if format != EXPORT_FORMAT {
            return Err(format!("the format is not {EXPORT_FORMAT:?}"));
        }
        if *version != EXPORT_VERSION {
            return Err(format!(
                "export version {version} is not supported (this assetpool reads version {EXPORT_VERSION})"
            ));
        }
        Ok(())
    }
}

/// One exported record; one line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportRecord {
    /// A setting (the issuer, the longest token lifetime, ...).
    Setting(ExportedSetting),
    /// An application.
    Application(ExportedApplication),
    /// An API key (its hash); boxed, as the largest record by far.
    ApiKey(Box<ExportedApiKey>),
    /// A user (the password hash).
    User(ExportedUser),
    /// A token-signing key (the sealed private key).
    SigningKey(ExportedSigningKey),
    /// A login session.
    Session(ExportedSession),
    /// A refresh token of a session (its hash).
    RefreshToken(ExportedRefreshToken),
    /// A member of an application.
    ApplicationMember(ExportedApplicationMember),
    /// An alert (open or acknowledged).
    Alert(Box<ExportedAlert>),
    /// An entry of the audit log, with its place in the hash chain.
    AuditEntry(Box<ExportedAuditEntry>),
    /// Where the audit log's hash chain starts and ends (one line, after
    /// every entry).
    AuditChain(ExportedAuditChain),
}

impl ExportRecord {
    /// The `type` tag: `setting`, `application`, `api_key`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            ExportRecord::Setting(_) => "setting",
            ExportRecord::Application(_) => "application",
            ExportRecord::ApiKey(_) => "api_key",
            ExportRecord::User(_) => "user",
            ExportRecord::SigningKey(_) => "signing_key",
            ExportRecord::Session(_) => "session",
            ExportRecord::RefreshToken(_) => "refresh_token",
            ExportRecord::ApplicationMember(_) => "application_member",
            ExportRecord::Alert(_) => "alert",
            ExportRecord::AuditEntry(_) => "audit_entry",
            ExportRecord::AuditChain(_) => "audit_chain",
        }
    }

    /// Position of the kind in an export: records only refer to earlier
    /// kinds, and an import reads the kinds in increasing rank.
    pub fn rank(&self) -> u8 {
        match self {
            ExportRecord::Setting(_) => 0,
            ExportRecord::Application(_) => 1,
            ExportRecord::ApiKey(_) => 2,
            ExportRecord::User(_) => 3,
            ExportRecord::ApplicationMember(_) => 4,
            ExportRecord::SigningKey(_) => 5,
            ExportRecord::Session(_) => 6,
            ExportRecord::RefreshToken(_) => 7,
            ExportRecord::Alert(_) => 8,
            ExportRecord::AuditEntry(_) => 9,
            ExportRecord::AuditChain(_) => 10,
        }
    }
}

/// `records` in export order (settings, applications, keys, users,
/// application members, signing keys, sessions, refresh tokens, alerts,
/// audit entries, the audit chain), keeping the given order within a kind:
/// stores import in this order whatever order the file had.
pub fn import_order(records: &[ExportRecord]) -> Vec<&ExportRecord> {
    let mut ordered: Vec<&ExportRecord> = records.iter().collect();
    ordered.sort_by_key(|record| record.rank());
    ordered
}

/// A setting as a name and a text value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSetting {
    /// Setting name (`issuer`, `longest_token_ttl`).
    pub name: String,
    /// Its value, as stored.
    pub value: String,
}

/// An application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedApplication {
    /// Application id.
    pub id: ApplicationId,
    /// Display name.
    pub name: String,
    /// Creation time (ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
    /// Whether only its members may log in through its keys (absent: false).
    #[serde(default)]
    pub members_only: bool,
}

/// A member of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedApplicationMember {
    /// The application.
    pub application_id: ApplicationId,
    /// The user.
    pub user_id: UserId,
    /// `owner` or `member`.
    pub role: ApplicationRole,
    /// When the user became a member (ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
}

/// An API key: its hash and lifecycle, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedApiKey {
    /// Key id.
    pub id: KeyId,
    /// Owning application.
    pub application_id: ApplicationId,
    /// Display name.
    pub name: String,
    /// Environment (full name).
    pub environment: Environment,
    /// SHA-256 of the secret (hex).
    #[serde(with = "hex_hash")]
    pub key_hash: SecretHash,
    /// Non-secret prefix of the secret.
    pub prefix: String,
    /// Creation time (ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
    /// Expiry or end of rotation grace (ms).
    #[serde(with = "optional_millis")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time (ms).
    #[serde(with = "optional_millis")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Revocation reason.
    pub revoked_reason: Option<String>,
    /// Successor key after a rotation.
    pub successor_id: Option<KeyId>,
    /// Last authenticated use (ms).
    #[serde(with = "optional_millis")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Rate limit and quota, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ExportedLimits>,
    /// When the key was disabled (ms), while it is.
    #[serde(
        default,
        with = "optional_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Support staff's notes (a JSON object), when set.
    #[serde(
        default,
        with = "key_metadata",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<KeyMetadata>,
    /// The owner's email address, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The client networks the key may be used from (normalised CIDRs), when limited.
    #[serde(
        default,
        with = "allowed_networks",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_cidrs: Option<AllowedNetworks>,
    /// Scopes, when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
}

/// The limits of an exported API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedLimits {
    /// Requests per rate unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_requests: Option<u32>,
    /// The rate unit in seconds (1, 60 or 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_unit_seconds: Option<i64>,
    /// Burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_burst: Option<u32>,
    /// Requests per quota period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_requests: Option<u64>,
    /// The quota period (`hour`, `day`, `month`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_period: Option<String>,
}

impl From<KeyLimits> for Option<ExportedLimits> {
    fn from(limits: KeyLimits) -> Self {
        if limits == KeyLimits::default() {
            return None;
        }
        Some(ExportedLimits {
            rate_requests: limits.rate.map(|rate| rate.requests),
            rate_unit_seconds: limits.rate.map(|rate| rate.unit_seconds()),
            rate_burst: limits.rate.map(|rate| rate.burst),
            quota_requests: limits.quota.map(|quota| quota.requests),
            quota_period: limits.quota.map(|quota| quota.period.as_str().to_owned()),
        })
    }
}

impl From<Option<&ExportedLimits>> for KeyLimits {
    fn from(exported: Option<&ExportedLimits>) -> Self {
        let Some(exported) = exported else {
            return KeyLimits::default();
        };
        let rate = match (
            exported.rate_requests,
            exported.rate_unit_seconds,
            exported.rate_burst,
        ) {
            (Some(requests), Some(unit), Some(burst)) => {
                RateLimit::from_parts(i64::from(requests), unit, i64::from(burst))
            }
            _ => None,
        };
        let quota = match (exported.quota_requests, exported.quota_period.as_deref()) {
            (Some(requests), Some(period)) if requests > 0 => {
                QuotaPeriod::parse(period).map(|period| Quota { requests, period })
            }
            _ => None,
        };
        KeyLimits { rate, quota }
    }
}

/// A user with the password's Argon2id hash. `Debug` hides the hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedUser {
    /// User id.
    pub id: UserId,
    /// Normalised email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// May use the admin API.
    pub admin: bool,
    /// Cannot log in.
    pub disabled: bool,
    /// Creation time (ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
    /// Scopes, when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
}

impl fmt::Debug for ExportedUser {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ExportedUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("admin", &self.admin)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A token-signing key with its private key sealed as stored. `Debug` shows
/// only how the private key is sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSigningKey {
    /// Key id (`kid`).
    pub kid: SigningKeyId,
    /// Always `EdDSA`.
    pub algorithm: String,
    /// The sealed PKCS#8 private key (`xchacha20poly1305:...` or `plain:...`).
    pub sealed_private_key: String,
    /// The raw Ed25519 public key (base64).
    #[serde(with = "base64_bytes")]
    pub public_key: Vec<u8>,
    /// Creation time (ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
    /// When it stopped signing (ms); absent while active.
    #[serde(with = "optional_millis")]
    pub retired_at: Option<DateTime<Utc>>,
    /// When it leaves the JWKS (ms).
    #[serde(with = "optional_millis")]
    pub retires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ExportedSigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sealing = self
            .sealed_private_key
            .split_once(':')
            .map_or("?", |(scheme, _)| scheme);
        formatter
            .debug_struct("ExportedSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("sealed_private_key", &format_args!("{sealing}:[redacted]"))
            .field("public_key_len", &self.public_key.len())
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("retires_at", &self.retires_at)
            .finish()
    }
}

/// A login session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSession {
    /// Session id (`sid`).
    pub id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The application of the key used to log in.
    pub application_id: ApplicationId,
    /// The key used to log in.
    pub api_key_id: KeyId,
    /// Creation time (ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
    /// Latest expiry of its access tokens (ms).
    #[serde(with = "millis")]
    pub access_expires_at: DateTime<Utc>,
    /// Revocation time (ms).
    #[serde(with = "optional_millis")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Scopes granted at login, when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
}

/// A refresh token as stored: its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedRefreshToken {
    /// SHA-256 of the token (hex).
    #[serde(with = "hex_hash")]
    pub token_hash: SecretHash,
    /// Its session.
    pub session_id: SessionId,
    /// Expiry (ms).
    #[serde(with = "millis")]
    pub expires_at: DateTime<Utc>,
    /// When it was spent (ms); a spent token presented again revokes its session.
    #[serde(with = "optional_millis")]
    pub spent_at: Option<DateTime<Utc>>,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAlert {
    /// Order of creation (kept, so pages of alerts stay in the same order).
    pub seq: i64,
    /// Alert id (`alr_...`).
    pub id: AlertId,
    /// Rule name.
    pub rule: String,
    /// Subject of the episode.
    pub subject: String,
    /// The key concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<KeyId>,
    /// The account concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Evidence of the latest trigger, a JSON object as text.
    pub evidence: String,
    /// First trigger (ms).
    #[serde(with = "millis")]
    pub first_seen: DateTime<Utc>,
    /// Latest trigger (ms).
    #[serde(with = "millis")]
    pub last_seen: DateTime<Utc>,
    /// Triggers in the episode.
    pub occurrences: u64,
    /// When acknowledged (ms).
    #[serde(with = "optional_millis")]
    pub acked_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
}

/// An entry of the audit log as stored: its position, its fields and its
/// place in the hash chain ([`crate::audit_chain`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAuditEntry {
    /// Position in the log (kept: the chain's head names positions).
    pub seq: i64,
    /// When (ms).
    #[serde(with = "millis")]
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// The admin user's id when the actor is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Details, a JSON object as text.
    pub detail: String,
    /// The hash of the entry before it (absent before the chain began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<String>,
    /// Its own hash (absent before the chain began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// The head of the audit log's hash chain ([`AuditChainHead`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAuditChain {
    /// The chain covers the entries after this position.
    pub started_after: i64,
    /// The chain's last entry, if any.
    pub last_seq: Option<i64>,
    /// The hash of the chain's last entry.
    pub last_hash: String,
}

impl From<&AlertRecord> for ExportedAlert {
    fn from(record: &AlertRecord) -> Self {
        ExportedAlert {
            seq: record.seq,
            id: record.id.clone(),
            rule: record.rule.clone(),
            subject: record.subject.clone(),
            api_key_id: record.api_key_id.clone(),
            account: record.account.clone(),
            evidence: record.evidence.clone(),
            first_seen: record.first_seen,
            last_seen: record.last_seen,
            occurrences: record.occurrences,
            acked_at: record.acked_at,
            acked_by: record.acked_by.clone(),
        }
    }
}

impl From<&AuditLink> for ExportedAuditEntry {
    fn from(link: &AuditLink) -> Self {
        let entry = &link.record.entry;
        ExportedAuditEntry {
            seq: link.record.seq,
            at: entry.at,
            actor: entry.actor.clone(),
            actor_id: entry.actor_id.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            outcome: entry.outcome.clone(),
            error: entry.error.clone(),
            detail: entry.detail.clone(),
            previous_hash: link.previous_hash.clone(),
            hash: link.hash.clone(),
        }
    }
}

impl From<&AuditChainHead> for ExportedAuditChain {
    fn from(head: &AuditChainHead) -> Self {
        ExportedAuditChain {
            started_after: head.started_after,
            last_seq: head.last_seq,
            last_hash: head.last_hash.clone(),
        }
    }
}

impl From<&ApplicationRecord> for ExportedApplication {
    fn from(record: &ApplicationRecord) -> Self {
        ExportedApplication {
            id: record.id.clone(),
            name: record.name.clone(),
            created_at: record.created_at,
            members_only: record.members_only,
        }
    }
}

impl From<&ExportedApplication> for ApplicationRecord {
    fn from(exported: &ExportedApplication) -> Self {
        ApplicationRecord {
            id: exported.id.clone(),
            name: exported.name.clone(),
            created_at: exported.created_at,
            members_only: exported.members_only,
        }
    }
}

impl From<&ApiKeyRecord> for ExportedApiKey {
    fn from(record: &ApiKeyRecord) -> Self {
        ExportedApiKey {
            id: record.id.clone(),
            application_id: record.application_id.clone(),
            name: record.name.clone(),
            environment: record.environment,
            key_hash: record.key_hash,
            prefix: record.prefix.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            revoked_reason: record.revoked_reason.clone(),
            successor_id: record.successor_id.clone(),
            last_used_at: record.last_used_at,
            limits: record.limits.into(),
            disabled_at: record.disabled_at,
            metadata: record.metadata.clone(),
            owner: record.owner.clone(),
            allowed_cidrs: record.allowed_networks.clone(),
            scopes: record.scopes.clone(),
        }
    }
}

impl From<&ExportedApiKey> for ApiKeyRecord {
    fn from(exported: &ExportedApiKey) -> Self {
        ApiKeyRecord {
            id: exported.id.clone(),
            application_id: exported.application_id.clone(),
            name: exported.name.clone(),
            environment: exported.environment,
            key_hash: exported.key_hash,
            prefix: exported.prefix.clone(),
            created_at: exported.created_at,
            expires_at: exported.expires_at,
            revoked_at: exported.revoked_at,
            revoked_reason: exported.revoked_reason.clone(),
            successor_id: exported.successor_id.clone(),
            last_used_at: exported.last_used_at,
            limits: exported.limits.as_ref().into(),
            disabled_at: exported.disabled_at,
            metadata: exported.metadata.clone(),
            owner: exported.owner.clone(),
            allowed_networks: exported.allowed_cidrs.clone(),
            scopes: exported.scopes.clone(),
        }
    }
}

impl From<&UserRecord> for ExportedUser {
    fn from(record: &UserRecord) -> Self {
        ExportedUser {
            id: record.id.clone(),
            email: record.email.clone(),
            password_hash: record.password_hash.clone(),
            admin: record.admin,
            disabled: record.disabled,
            created_at: record.created_at,
            scopes: record.scopes.clone(),
        }
    }
}

impl From<&ExportedUser> for UserRecord {
    fn from(exported: &ExportedUser) -> Self {
        UserRecord {
            id: exported.id.clone(),
            email: exported.email.clone(),
            password_hash: exported.password_hash.clone(),
            admin: exported.admin,
            disabled: exported.disabled,
            created_at: exported.created_at,
            // A concurrency token of logins, meaningless in another database.
            password_version: 0,
            scopes: exported.scopes.clone(),
        }
    }
}

impl From<&SigningKeyRecord> for ExportedSigningKey {
    fn from(record: &SigningKeyRecord) -> Self {
        ExportedSigningKey {
            kid: record.kid.clone(),
            algorithm: record.algorithm.clone(),
            sealed_private_key: record.sealed_private_key.clone(),
            public_key: record.public_key.clone(),
            created_at: record.created_at,
            retired_at: record.retired_at,
            retires_at: record.retires_at,
        }
    }
}

impl From<&ExportedSigningKey> for SigningKeyRecord {
    fn from(exported: &ExportedSigningKey) -> Self {
        SigningKeyRecord {
            kid: exported.kid.clone(),
            algorithm: exported.algorithm.clone(),
            sealed_private_key: exported.sealed_private_key.clone(),
            public_key: exported.public_key.clone(),
            created_at: exported.created_at,
            retired_at: exported.retired_at,
            retires_at: exported.retires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_millis;

    fn user() -> ExportRecord {
        ExportRecord::User(ExportedUser {
            id: "usr_1".into(),
            email: "alice@example.test".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            admin: false,
            disabled: true,
            created_at: from_millis(1_900_000_000_123),
            scopes: Some(ScopeSet::parse("orders:read orders:write").unwrap()),
        })
    }

    #[test]
    fn header_line_is_the_documented_one() {
        let line = serde_json::to_string(&ExportHeader::current()).unwrap();
        assert_eq!(
            line,
            r#"{"type":"header","format":"assetpool-export","version":1}"#
        );
        let parsed: ExportHeader = serde_json::from_str(&line).unwrap();
        assert!(parsed.check().is_ok());
        let future: ExportHeader =
            serde_json::from_str(r#"{"type":"header","format":"assetpool-export","version":2}"#)
                .unwrap();
        assert!(future.check().unwrap_err().contains("version 2"));
        assert!(serde_json::from_str::<ExportHeader>(r#"{"type":"user"}"#).is_err());
    }

    #[test]
    fn records_are_tagged_lines_with_millisecond_times() {
        let line = serde_json::to_string(&user()).unwrap();
        assert!(
            line.starts_with(r#"{"type":"user","id":"usr_1","#),
            "{line}"
        );
        assert!(line.contains(r#""created_at":1900000000123"#), "{line}");
        assert!(
            line.contains(r#""scopes":"orders:read orders:write""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<ExportRecord>(&line).unwrap(), user());
    }

    #[test]
    fn hashes_are_hex_and_public_keys_base64() {
        let token = ExportRecord::RefreshToken(ExportedRefreshToken {
            token_hash: SecretHash::of("refresh"),
            session_id: "ses_1".into(),
            expires_at: from_millis(5),
            spent_at: None,
        });
        let line = serde_json::to_string(&token).unwrap();
        assert!(line.contains(&SecretHash::of("refresh").to_hex()), "{line}");
        assert!(line.contains(r#""spent_at":null"#), "{line}");
        assert_eq!(serde_json::from_str::<ExportRecord>(&line).unwrap(), token);
        let bad = line.replace(&SecretHash::of("refresh").to_hex(), "abc");
        let error = serde_json::from_str::<ExportRecord>(&bad).unwrap_err();
        assert!(error.to_string().contains("64 hex"), "{error}");

        let key = ExportedSigningKey {
            kid: "sig_1".into(),
            algorithm: "EdDSA".into(),
            sealed_private_key: "plain:c2VjcmV0".into(),
            public_key: vec![1, 2, 3],
            created_at: from_millis(0),
            retired_at: None,
            retires_at: None,
        };
        let line = serde_json::to_string(&ExportRecord::SigningKey(key)).unwrap();
        assert!(line.contains(r#""public_key":"AQID""#), "{line}");
    }

    #[test]
    fn unrestricted_records_have_no_scopes_and_bad_scopes_are_refused() {
        let ExportRecord::User(mut unrestricted) = user() else {
            unreachable!()
        };
        unrestricted.scopes = None;
        let line = serde_json::to_string(&ExportRecord::User(unrestricted)).unwrap();
        assert!(!line.contains("scopes"), "{line}");
        let empty = serde_json::to_string(&user())
            .unwrap()
            .replace("orders:read orders:write", "");
        let ExportRecord::User(parsed) = serde_json::from_str(&empty).unwrap() else {
            unreachable!()
        };
        assert_eq!(parsed.scopes, Some(ScopeSet::empty()));
        let bad = serde_json::to_string(&user())
            .unwrap()
            .replace("orders:read", "Orders");
        assert!(serde_json::from_str::<ExportRecord>(&bad).is_err());
    }

    #[test]
    fn unknown_fields_and_impossible_times_are_refused() {
        let line = r#"{"type":"setting","name":"issuer","value":"x","extra":1}"#;
        assert!(serde_json::from_str::<ExportRecord>(line).is_err());
        let far = r#"{"type":"application","id":"a","name":"n","created_at":9223372036854775807}"#;
        let error = serde_json::from_str::<ExportRecord>(far).unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
    }

    #[test]
    fn debug_hides_password_hashes_and_sealed_keys() {
        let shown = format!("{:?}", user());
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        let key = ExportedSigningKey {
            kid: "sig_1".into(),
            algorithm: "EdDSA".into(),
            sealed_private_key: "xchacha20poly1305:c2VjcmV0c2VjcmV0".into(),
            public_key: vec![0; 32],
            created_at: from_millis(0),
            retired_at: None,
            retires_at: None,
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("xchacha20poly1305:[redacted]"), "{shown}");
    }

    #[test]
    fn key_lifecycle_fields_round_trip_and_may_be_absent() {
        let line = r#"{"type":"api_key","id":"key_1","application_id":"app_1","name":"n","environment":"production","key_hash":"HASH","prefix":"apk_prod_x","created_at":1,"expires_at":null,"revoked_at":null,"revoked_reason":null,"successor_id":null,"last_used_at":null}"#
            .replace("HASH", &SecretHash::of("k").to_hex());
        let ExportRecord::ApiKey(plain) = serde_json::from_str::<ExportRecord>(&line).unwrap()
        else {
            panic!("an api_key record");
        };
        assert_eq!(plain.disabled_at, None);
        assert_eq!(plain.allowed_cidrs, None);
        let full = Box::new(ExportedApiKey {
            disabled_at: Some(from_millis(7)),
            metadata: Some(KeyMetadata::parse(r#"{"team":"ops"}"#).unwrap()),
            owner: Some("ops@example.test".into()),
            allowed_cidrs: Some(AllowedNetworks::parse(&["10.0.0.0/8", "2001:db8::1"]).unwrap()),
            ..*plain
        });
        let line = serde_json::to_string(&ExportRecord::ApiKey(full.clone())).unwrap();
        assert!(line.contains(r#""metadata":{"team":"ops"}"#), "{line}");
        assert!(
            line.contains(r#""allowed_cidrs":["10.0.0.0/8","2001:db8::1/128"]"#),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<ExportRecord>(&line).unwrap(),
            ExportRecord::ApiKey(full)
        );
        let bad = line.replace("10.0.0.0/8", "10.0.0.0/99");
        let error = serde_json::from_str::<ExportRecord>(&bad).unwrap_err();
        assert!(error.to_string().contains("CIDR"), "{error}");
    }

    #[test]
    fn applications_read_without_members_only_and_members_are_tagged() {
        let old = r#"{"type":"application","id":"app_1","name":"n","created_at":5}"#;
        let ExportRecord::Application(application) = serde_json::from_str(old).unwrap() else {
            panic!("not an application");
        };
        assert!(!application.members_only);
        let member = ExportRecord::ApplicationMember(ExportedApplicationMember {
            application_id: "app_1".into(),
            user_id: "usr_1".into(),
            role: ApplicationRole::Owner,
            created_at: from_millis(7),
        });
        let line = serde_json::to_string(&member).unwrap();
        assert_eq!(
            line,
            r#"{"type":"application_member","application_id":"app_1","user_id":"usr_1","role":"owner","created_at":7}"#
        );
        assert_eq!(serde_json::from_str::<ExportRecord>(&line).unwrap(), member);
        let bad = line.replace("owner", "admin");
        assert!(serde_json::from_str::<ExportRecord>(&bad).is_err());
        // A member comes after the users and applications it names.
        let records = vec![member.clone(), user()];
        assert_eq!(import_order(&records), vec![&records[1], &records[0]]);
    }

    #[test]
    fn import_order_puts_referenced_kinds_first() {
        let setting = ExportRecord::Setting(ExportedSetting {
            name: "issuer".into(),
            value: "http://x".into(),
        });
        let records = vec![user(), setting.clone()];
        let ordered = import_order(&records);
        assert_eq!(ordered, vec![&setting, &records[0]]);
    }
}
