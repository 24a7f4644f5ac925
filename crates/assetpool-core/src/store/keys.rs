//! Applications and their API keys: the records and [`KeyStore`].

use super::{CreationPage, StoreResult};
use crate::allowed_networks::AllowedNetworks;
use crate::ids::{ApplicationId, KeyId};
use crate::key_metadata::KeyMetadata;
use crate::limits::KeyLimits;
use crate::{ApiKeyStatus, Environment, ScopeSet, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// An application: the owner of one or more API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    /// Application id.
    pub id: ApplicationId,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Whether only its members may log in through its keys
    /// ([`ApplicationRecord::admits`]).
    pub members_only: bool,
}

impl ApplicationRecord {
    /// Whether the application lets a user log in through its keys (and
    /// keep a session there): anyone, unless it is members-only; then only
    /// its members, whatever their role.
    pub fn admits(&self, member: bool) -> bool {
        !self.members_only || member
    }
}

/// An API key as stored: its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: KeyId,
    /// Owning application.
    pub application_id: ApplicationId,
    /// Display name.
    pub name: String,
    /// Environment the key is for.
    pub environment: Environment,
    /// SHA-256 of the secret.
    pub key_hash: SecretHash,
    /// Non-secret prefix of the secret.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry (or end of rotation grace).
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Revocation reason.
    pub revoked_reason: Option<String>,
    /// Successor key after a rotation.
    pub successor_id: Option<KeyId>,
    /// Last authenticated use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Rate limit and quota (none by default).
    pub limits: KeyLimits,
    /// When the key was disabled, while it is (reversible, unlike revocation).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Support staff's notes on the key.
    pub metadata: Option<KeyMetadata>,
    /// The email address of the key's owner (normalised).
    pub owner: Option<String>,
    /// The client networks the key may be used from (`None`: any).
    pub allowed_networks: Option<AllowedNetworks>,
    /// What the key's application may do (`None`: unrestricted).
    pub scopes: Option<ScopeSet>,
}

impl ApiKeyRecord {
    /// The key's lifecycle state at `now`: revoked, then expired, then
    /// disabled win over rotating and active.
    pub fn status(&self, now: DateTime<Utc>) -> ApiKeyStatus {
        if self.revoked_at.is_some() {
            ApiKeyStatus::Revoked
        } else if self.expires_at.is_some_and(|expires_at| expires_at <= now) {
            ApiKeyStatus::Expired
        } else if self.disabled_at.is_some() {
            ApiKeyStatus::Disabled
        } else if self.successor_id.is_some() {
            ApiKeyStatus::Rotating
        } else {
            ApiKeyStatus::Active
        }
    }

    /// Whether the key may be rotated at `now`: only an active key (not
    /// already rotated, revoked, expired or disabled).
    pub fn can_rotate(&self, now: DateTime<Utc>) -> bool {
        self.status(now) == ApiKeyStatus::Active
    }

    /// Whether the key may be disabled or enabled: any key not revoked
    /// (revocation is final; an expired key may be disabled, which suspends
    /// the sessions opened through it).
    pub fn can_toggle_disabled(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// Whether the key's expiry may be changed: not once it was revoked or
    /// rotated (a rotated key's expiry is the end of its grace period).
    pub fn can_change_expiry(&self) -> bool {
        self.revoked_at.is_none() && self.successor_id.is_none()
    }

    /// Whether the key may let its application in again some day: usable
    /// now, or only disabled (an enable brings it back).
    pub fn may_return(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.status(now),
            ApiKeyStatus::Active | ApiKeyStatus::Rotating | ApiKeyStatus::Disabled
        )
    }

    /// Whether the key still lets its application in at `now` (active, or
    /// rotating within its grace period).
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.status(now),
            ApiKeyStatus::Active | ApiKeyStatus::Rotating
        )
    }
}

/// Whether an application's sessions end at `now`, its keys being
/// `remaining`: when none of them is usable any more or may become so again
/// (its last such key was revoked; a disabled key may be enabled), nothing
/// can present its tokens, and they are revoked.
pub fn sessions_end_with(remaining: &[ApiKeyRecord], now: DateTime<Utc>) -> bool {
    !remaining.iter().any(|key| key.may_return(now))
}

/// What `keys update` changes on a key (`None`: unchanged; `Some(None)`:
/// cleared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New limits (replacing the old ones as a whole).
    pub limits: Option<KeyLimits>,
    /// New expiry, or none.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New metadata (replacing the old), or none.
    pub metadata: Option<Option<KeyMetadata>>,
    /// New owner, or none.
    pub owner: Option<Option<String>>,
    /// New allow-list (replacing the old), or none (any address).
    pub allowed_networks: Option<Option<AllowedNetworks>>,
    /// New scopes, replacing the old set (`Some(None)`: unrestricted).
    pub scopes: Option<Option<ScopeSet>>,
}

impl ApiKeyUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ApiKeyUpdate::default()
    }

    /// Whether applying the update to `key` is allowed: an expiry change
    /// only where [`ApiKeyRecord::can_change_expiry`] says so.
    pub fn allowed_on(&self, key: &ApiKeyRecord) -> bool {
        self.expires_at.is_none() || key.can_change_expiry()
    }

    /// `key` with the update applied.
    pub fn apply(&self, key: &ApiKeyRecord) -> ApiKeyRecord {
        let mut updated = key.clone();
        if let Some(name) = &self.name {
            updated.name.clone_from(name);
        }
        if let Some(limits) = self.limits {
            updated.limits = limits;
        }
        if let Some(expires_at) = self.expires_at {
            updated.expires_at = expires_at;
        }
        if let Some(metadata) = &self.metadata {
            updated.metadata.clone_from(metadata);
        }
        if let Some(owner) = &self.owner {
            updated.owner.clone_from(owner);
        }
        if let Some(allowed_networks) = &self.allowed_networks {
            updated.allowed_networks.clone_from(allowed_networks);
        }
        if let Some(scopes) = &self.scopes {
            updated.scopes.clone_from(scopes);
        }
        updated
    }
}

/// Which keys a filtered list shows, by lifecycle state at a given time
/// (see [`ApiKeyRecord::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatusFilter {
    /// Usable and not rotated (a rotated key in its grace period is only
    /// in the unfiltered list).
    Active,
    /// Revoked.
    Revoked,
    /// Disabled (and neither revoked nor expired).
    Disabled,
    /// Past its expiry or its rotation grace (and not revoked).
    Expired,
}

impl KeyStatusFilter {
    /// Parses `active`, `revoked`, `disabled` or `expired`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(KeyStatusFilter::Active),
            "revoked" => Some(KeyStatusFilter::Revoked),
            "disabled" => Some(KeyStatusFilter::Disabled),
            "expired" => Some(KeyStatusFilter::Expired),
            _ => None,
        }
    }

    /// The name [`KeyStatusFilter::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatusFilter::Active => "active",
            KeyStatusFilter::Revoked => "revoked",
            KeyStatusFilter::Disabled => "disabled",
            KeyStatusFilter::Expired => "expired",
        }
    }

    /// Whether a key in `status` is one this filter shows.
    pub fn admits(self, status: ApiKeyStatus) -> bool {
        matches!(
            (self, status),
            (KeyStatusFilter::Active, ApiKeyStatus::Active)
                | (KeyStatusFilter::Revoked, ApiKeyStatus::Revoked)
                | (KeyStatusFilter::Disabled, ApiKeyStatus::Disabled)
                | (KeyStatusFilter::Expired, ApiKeyStatus::Expired)
        )
    }
}

/// Longest search text of a key list, in bytes (ids, prefixes and names
/// are shorter).
pub const MAX_KEY_SEARCH_BYTES: usize = 200;

/// What a search of keys looks for: a key whose id is the text, or whose
/// prefix or name starts with it (as typed: case matters). Every part is
/// answered by an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySearch {
    text: String,
    /// The least string above every string that starts with `text`, in
    /// code point (UTF-8 byte) order; `None` when there is none.
    above: Option<String>,
}

impl KeySearch {
    /// The search for `text` (trimmed); `None` when blank, longer than
    /// [`MAX_KEY_SEARCH_BYTES`] or holding a control character.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty()
            || text.len() > MAX_KEY_SEARCH_BYTES
            || assetpool_wire::text::contains_control(text)
        {
            return None;
        }
        Some(KeySearch {
            text: text.to_owned(),
            above: least_above_prefix(text),
        })
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The exclusive upper bound of the strings starting with the text (see
    /// [`KeySearch::matches`]).
    pub fn above(&self) -> Option<&str> {
        self.above.as_deref()
    }

    /// Whether `key` is one the search finds.
    pub fn matches(&self, key: &ApiKeyRecord) -> bool {
        key.id.as_str() == self.text
            || key.prefix.starts_with(&self.text)
            || key.name.starts_with(&self.text)
    }
}

/// The least string greater than every string starting with `prefix`
/// (in code point order, which is UTF-8 byte order): `prefix` with its last
/// character that can be incremented incremented, and what follows dropped.
fn least_above_prefix(prefix: &str) -> Option<String> {
    let mut characters: Vec<char> = prefix.chars().collect();
    while let Some(last) = characters.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(next) = char::from_u32(next) {
            characters.push(next);
            return Some(characters.into_iter().collect());
        }
    }
    None
}

/// The filters of a list of keys (the web console's): each given one
/// narrows the list. Stores compose their query of the given filters only,
/// so each combination is a statement of its own that an index answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Only keys of this environment.
    pub environment: Option<Environment>,
    /// Only keys of this application.
    pub application_id: Option<ApplicationId>,
    /// Only keys in this state at `now` of the list.
    pub status: Option<KeyStatusFilter>,
    /// Only keys this search finds.
    pub search: Option<KeySearch>,
}

impl KeyFilter {
    /// Whether `key` passes every filter at `now` (the rule the stores'
    /// queries implement).
    pub fn admits(&self, key: &ApiKeyRecord, now: DateTime<Utc>) -> bool {
        self.environment
            .is_none_or(|environment| key.environment == environment)
            && self
                .application_id
                .as_ref()
                .is_none_or(|application| &key.application_id == application)
            && self
                .status
                .is_none_or(|status| status.admits(key.status(now)))
            && self
                .search
                .as_ref()
                .is_none_or(|search| search.matches(key))
    }
}

/// Applications and their API keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Creates an application (in a write transaction of its own).
    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()>;
    /// Finds an application.
    async fn application(&self, id: &ApplicationId) -> StoreResult<Option<ApplicationRecord>>;
    /// Stores a new key (its application must exist).
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Finds a key by the hash of its secret.
    async fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>>;
    /// Finds a key by id.
    async fn api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKeyRecord>>;
    /// Lists keys, optionally of one environment, in creation order, one
    /// page (keyset pagination in storage).
    async fn list_api_keys(
        &self,
        environment: Option<Environment>,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Lists the keys of one application in creation order, one page
    /// (keyset pagination in storage; the web console's owner view).
    async fn list_application_api_keys(
        &self,
        application_id: &ApplicationId,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Lists the keys `filter` admits at `now`, in creation order, one page
    /// (keyset pagination in storage; the web console's key list).
    async fn filter_api_keys(
        &self,
        filter: &KeyFilter,
        now: DateTime<Utc>,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Keys neither revoked nor rotated whose expiry is after `after` and at
    /// or before `until`, soonest first (the expiry warnings).
    async fn api_keys_expiring(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes a key and the sessions opened through it (a revoked key may
    /// have leaked; rotation, which does not revoke, keeps them). When it was
    /// its application's last usable key, all the application's sessions
    /// are revoked too. Returns the updated key.
    async fn revoke_api_key(
        &self,
        id: &KeyId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Rotates a key: stores `successor` and ends the old key's life at
    /// `grace_until`. Fails with `Conflict` if the key was already rotated or is not usable.
    async fn rotate_api_key(
        &self,
        id: &KeyId,
        successor: &ApiKeyRecord,
        grace_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Records last-use times (a batch from the usage writer).
    async fn record_api_key_use(&self, uses: &[(KeyId, DateTime<Utc>)]) -> StoreResult<()>;
    /// Changes what `update` names on a key and announces it. Fails with
    /// `Conflict` when the update is not allowed on the key as it is
    /// ([`ApiKeyUpdate::allowed_on`]). Returns the updated key.
    /// Changes a key's name, limits or scopes and announces it (servers drop
    /// it from memory, so narrowed scopes apply to its live tokens). Returns
    /// the updated key.
    async fn update_api_key(
        &self,
        id: &KeyId,
        update: &ApiKeyUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// Disables (`disabled`: from `now`, kept if already disabled) or enables
    /// a key and announces it, both as a changed key and as a change of the
    /// set of disabled keys. Fails with `Conflict` for a revoked key
    /// ([`ApiKeyRecord::can_toggle_disabled`]). Returns the updated key.
    async fn set_api_key_disabled(
        &self,
        id: &KeyId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord>;
    /// The ids of the keys disabled and not revoked (few: the in-memory set
    /// that refuses the tokens of their sessions).
    async fn disabled_api_keys(&self) -> StoreResult<Vec<KeyId>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn key() -> ApiKeyRecord {
        ApiKeyRecord {
            id: "key_1".into(),
            application_id: "app_1".into(),
            name: "shop".into(),
            environment: Environment::Production,
            key_hash: SecretHash([0; 32]),
            prefix: "apk_prod_x".into(),
            created_at: at(0),
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            successor_id: None,
            last_used_at: None,
            limits: KeyLimits::default(),
            disabled_at: None,
            metadata: None,
            owner: None,
            allowed_networks: None,
            scopes: None,
        }
    }

    #[test]
    fn a_search_ranges_over_every_string_starting_with_its_text() {
        assert_eq!(
            least_above_prefix("apk_prod_ab").as_deref(),
            Some("apk_prod_ac")
        );
        assert_eq!(least_above_prefix("Shop").as_deref(), Some("Shoq"));
        assert_eq!(
            least_above_prefix("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(least_above_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(least_above_prefix("\u{10FFFF}"), None);
        let search = KeySearch::parse("  Shop ").unwrap();
        assert_eq!((search.text(), search.above()), ("Shop", Some("Shoq")));
        let mut found = key();
        found.name = "Shop backend".into();
        assert!(search.matches(&found));
        found.name = "shop backend".into();
        assert!(!search.matches(&found), "case as typed");
        assert!(KeySearch::parse("a\u{7}b").is_none());
        assert!(KeySearch::parse(" ").is_none());
        assert!(KeySearch::parse(&"x".repeat(MAX_KEY_SEARCH_BYTES + 1)).is_none());
    }

    #[test]
    fn state_filters_follow_the_keys_status() {
        let revoked_and_expired = ApiKeyRecord {
            revoked_at: Some(at(1)),
            expires_at: Some(at(2)),
            ..key()
        };
        let filter = |status| KeyFilter {
            status: Some(status),
            ..KeyFilter::default()
        };
        assert!(filter(KeyStatusFilter::Revoked).admits(&revoked_and_expired, at(3)));
        assert!(!filter(KeyStatusFilter::Expired).admits(&revoked_and_expired, at(3)));
        assert!(filter(KeyStatusFilter::Active).admits(&key(), at(3)));
        assert_eq!(KeyStatusFilter::parse("rotating"), None);
        for name in ["active", "revoked", "disabled", "expired"] {
            assert_eq!(
                KeyStatusFilter::parse(name).map(KeyStatusFilter::as_str),
                Some(name)
            );
        }
    }

    #[test]
    fn only_active_keys_rotate() {
        assert!(key().can_rotate(at(1)));
        let rotating = ApiKeyRecord {
            successor_id: Some("key_2".into()),
            expires_at: Some(at(10)),
            ..key()
        };
        assert!(!rotating.can_rotate(at(1)));
        let revoked = ApiKeyRecord {
            revoked_at: Some(at(1)),
            ..key()
        };
        assert!(!revoked.can_rotate(at(2)));
        let expired = ApiKeyRecord {
            expires_at: Some(at(1)),
            ..key()
        };
        assert!(!expired.can_rotate(at(1)));
        let disabled = ApiKeyRecord {
            disabled_at: Some(at(1)),
            ..key()
        };
        assert!(!disabled.can_rotate(at(2)));
    }

    #[test]
    fn revoked_and_expired_win_over_disabled() {
        let disabled = ApiKeyRecord {
            disabled_at: Some(at(1)),
            successor_id: Some("key_2".into()),
            expires_at: Some(at(10)),
            ..key()
        };
        assert_eq!(disabled.status(at(2)), ApiKeyStatus::Disabled);
        assert!(!disabled.is_usable(at(2)));
        assert_eq!(disabled.status(at(10)), ApiKeyStatus::Expired);
        let revoked = ApiKeyRecord {
            revoked_at: Some(at(3)),
            ..disabled.clone()
        };
        assert_eq!(revoked.status(at(4)), ApiKeyStatus::Revoked);
        assert!(disabled.can_toggle_disabled());
        assert!(!revoked.can_toggle_disabled());
        assert!(!disabled.can_change_expiry(), "rotated");
        assert!(key().can_change_expiry());
    }

    #[test]
    fn updates_apply_what_they_name() {
        let update = ApiKeyUpdate {
            owner: Some(Some("ops@example.com".into())),
            expires_at: Some(Some(at(60))),
            ..ApiKeyUpdate::default()
        };
        assert!(!update.is_empty());
        assert!(ApiKeyUpdate::default().is_empty());
        let updated = update.apply(&key());
        assert_eq!(updated.owner.as_deref(), Some("ops@example.com"));
        assert_eq!(updated.expires_at, Some(at(60)));
        assert_eq!(updated.name, "shop");
        let cleared = ApiKeyUpdate {
            owner: Some(None),
            ..ApiKeyUpdate::default()
        }
        .apply(&updated);
        assert_eq!(cleared.owner, None);
        let revoked = ApiKeyRecord {
            revoked_at: Some(at(1)),
            ..key()
        };
        assert!(!update.allowed_on(&revoked));
        assert!(ApiKeyUpdate {
            owner: Some(None),
            ..ApiKeyUpdate::default()
        }
        .allowed_on(&revoked));
    }

    #[test]
    fn sessions_end_with_the_last_usable_key() {
        let revoked = ApiKeyRecord {
            revoked_at: Some(at(1)),
            ..key()
        };
        let rotating = ApiKeyRecord {
            successor_id: Some("key_2".into()),
            expires_at: Some(at(10)),
            ..key()
        };
        assert!(sessions_end_with(std::slice::from_ref(&revoked), at(2)));
        assert!(sessions_end_with(&[], at(2)));
        assert!(!sessions_end_with(&[revoked.clone(), key()], at(2)));
        // A key in its rotation grace still lets the application in; past it, not.
        assert!(!sessions_end_with(
            &[revoked.clone(), rotating.clone()],
            at(2)
        ));
        assert!(sessions_end_with(&[revoked.clone(), rotating], at(10)));
        // A disabled key may be enabled again: the sessions stay (suspended).
        let disabled = ApiKeyRecord {
            disabled_at: Some(at(1)),
            ..key()
        };
        assert!(!sessions_end_with(&[revoked, disabled], at(2)));
    }
}
