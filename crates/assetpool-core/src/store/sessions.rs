//! Login sessions and their refresh tokens: the records and [`SessionStore`].

use super::{LoginAttempt, StoreResult, UserRecord};
use crate::ids::{ApplicationId, KeyId, SessionId, UserId};
use crate::{ScopeSet, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A new login session with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id (`sid` claim).
    pub id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The application of the API key used to log in.
    pub application_id: ApplicationId,
    /// The API key used to log in.
    pub api_key_id: KeyId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry of the access token issued with it.
    pub access_expires_at: DateTime<Utc>,
    /// Hash of the first refresh token.
    pub refresh_hash: SecretHash,
    /// Expiry of the first refresh token.
    pub refresh_expires_at: DateTime<Utc>,
    /// The scopes granted at login (`None`: unrestricted), kept by refreshes.
    pub scopes: Option<ScopeSet>,
}

/// A login whose password was verified, to be turned into a session.
#[derive(Debug, Clone)]
pub struct SessionOpening {
    /// The session and its first refresh token.
    pub session: NewSession,
    /// The [`UserRecord::password_version`] the password was verified
    /// against. The session opens only if the user's password is still of
    /// this version and the user is not disabled: a password change or a
    /// disable that landed while the password was being checked wins.
    pub password_version: i64,
    /// The attempt counted for this login: taken back (its pair counter is
    /// cleared, the address's and account's no longer count it in flight)
    /// and its address remembered as one the account logged in from.
    pub attempt: LoginAttempt,
    /// The user's scopes the grant was decided from: the session opens only
    /// if they are still the user's (a change of the user's scopes that
    /// landed meanwhile wins).
    pub user_scopes: Option<ScopeSet>,
}

/// What a refresh presents and what it would issue.
#[derive(Debug, Clone)]
pub struct SpendRefreshToken {
    /// Hash of the presented refresh token.
    pub refresh_hash: SecretHash,
    /// The application of the API key presented with it.
    pub application_id: ApplicationId,
    /// Now.
    pub now: DateTime<Utc>,
    /// Hash of the successor refresh token.
    pub new_refresh_hash: SecretHash,
    /// Expiry of the successor refresh token.
    pub new_refresh_expires_at: DateTime<Utc>,
    /// Expiry of the access token about to be issued.
    pub access_expires_at: DateTime<Utc>,
}

/// A stored refresh token with its session and user, as
/// [`SessionStore::spend_refresh_token`] finds it (its rows locked).
#[derive(Debug, Clone)]
pub struct PresentedRefreshToken {
    /// The token's session.
    pub session_id: SessionId,
    /// The session's application.
    pub application_id: ApplicationId,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// Whether it was spent before.
    pub spent: bool,
    /// Whether its session is revoked.
    pub session_revoked: bool,
    /// Latest expiry of the session's access tokens.
    pub access_expires_at: DateTime<Utc>,
    /// The session's user.
    pub user: UserRecord,
    /// The key the session was opened through.
    pub api_key_id: KeyId,
    /// Whether that key is disabled now (its sessions are suspended).
    pub key_disabled: bool,
    /// Whether the session's application still admits its user
    /// ([`super::ApplicationRecord::admits`]).
    pub admitted: bool,
    /// The scopes granted at login.
    pub scopes: Option<ScopeSet>,
}

/// What spending a presented refresh token comes to: the rule, decided in
/// core, that every backend applies ([`SpendRefreshToken::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendDecision {
    /// Refused: another application's token, or unspent but expired, of a
    /// revoked session, of a disabled user, of a user the application no
    /// longer admits, or of a session opened through a key that is disabled
    /// now. Nothing changes (an enable brings the last case back).
    Refuse,
    /// Spent before: reuse. The session is revoked (`revoke_until`: its
    /// access tokens refused until then; `None` when it is revoked already,
    /// so it is revoked and announced once).
    Reuse {
        /// Latest expiry of the session's access tokens, if it must be revoked now.
        revoke_until: Option<DateTime<Utc>>,
    },
    /// Spend it, store its successor and extend the session.
    Renew,
}

impl SpendRefreshToken {
    /// Decides what presenting `found` comes to. A token of another
    /// application is refused whatever its state (that application's key
    /// cannot revoke this one's sessions); a spent token is reuse every time
    /// it comes back, also once its session is revoked.
    pub fn decide(&self, found: &PresentedRefreshToken) -> SpendDecision {
        if found.application_id != self.application_id {
            return SpendDecision::Refuse;
        }
        if found.spent {
            return SpendDecision::Reuse {
                revoke_until: (!found.session_revoked)
                    .then(|| found.access_expires_at.max(self.access_expires_at)),
            };
        }
        if found.session_revoked
            || found.expires_at <= self.now
            || found.user.disabled
            || found.key_disabled
            || !found.admitted
        {
            return SpendDecision::Refuse;
        }
        SpendDecision::Renew
    }
}

/// The session a refresh token renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewedSession {
    /// Session id.
    pub session_id: SessionId,
    /// The user.
    pub user: UserRecord,
    /// The key the session was opened through (its tokens name it).
    pub api_key_id: KeyId,
    /// The scopes granted at login.
    pub scopes: Option<ScopeSet>,
}

/// Outcome of [`SessionStore::spend_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live and is now spent; a successor was stored.
    Renewed(RenewedSession),
    /// The token had already been spent: the whole session is (now) revoked.
    /// A spent token is always reported as reused, even once its session is revoked.
    Reused {
        /// The revoked session.
        session_id: SessionId,
    },
    /// Unknown, expired, of a revoked session (and not spent), of another
    /// application, of a disabled user, of a user the application no longer
    /// admits, or of a session whose key is disabled.
    Invalid,
}

/// A revoked session whose access tokens may still be unexpired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    /// Session id.
    pub session_id: SessionId,
    /// Latest expiry of its access tokens.
    pub until: DateTime<Utc>,
}

/// Login sessions and their refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Opens the session of a successful login, in one transaction: checks
    /// that the user's password is still of the verified version, the user
    /// is enabled with the scopes the grant was decided from, the login's key
    /// is not revoked and its application admits the user; stores the
    /// session (with its granted scopes) with
    /// its first refresh token, and takes the login attempt back. Returns
    /// false (and writes nothing) if the user or the key changed meanwhile.
    async fn open_session(&self, opening: &SessionOpening) -> StoreResult<bool>;
    /// Spends a refresh token atomically (exactly once, even under concurrency).
    async fn spend_refresh_token(&self, spend: &SpendRefreshToken) -> StoreResult<RefreshOutcome>;
    /// Revokes a session (logout). Returns false if it was already revoked or unknown.
    async fn revoke_session(&self, session_id: &SessionId, now: DateTime<Utc>)
        -> StoreResult<bool>;
    /// Revoked sessions whose access tokens have not all expired at `now`.
    async fn revoked_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<RevokedSession>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn spend(now: DateTime<Utc>) -> SpendRefreshToken {
        SpendRefreshToken {
            refresh_hash: SecretHash([1; 32]),
            application_id: "app_1".into(),
            now,
            new_refresh_hash: SecretHash([2; 32]),
            new_refresh_expires_at: now + Duration::days(30),
            access_expires_at: now + Duration::hours(1),
        }
    }

    fn found() -> PresentedRefreshToken {
        PresentedRefreshToken {
            session_id: "ses_1".into(),
            application_id: "app_1".into(),
            expires_at: at(60),
            spent: false,
            session_revoked: false,
            access_expires_at: at(30),
            user: UserRecord {
                id: "usr_1".into(),
                email: "a@example.com".into(),
                password_hash: String::new(),
                admin: false,
                disabled: false,
                created_at: at(0),
                password_version: 0,
                scopes: None,
            },
            api_key_id: "key_1".into(),
            key_disabled: false,
            admitted: true,
            scopes: None,
        }
    }

    #[test]
    fn a_live_token_renews_and_anything_else_is_refused() {
        assert_eq!(spend(at(1)).decide(&found()), SpendDecision::Renew);
        let mut other = found();
        other.application_id = "app_2".into();
        assert_eq!(spend(at(1)).decide(&other), SpendDecision::Refuse);
        assert_eq!(
            spend(at(60)).decide(&found()),
            SpendDecision::Refuse,
            "expired"
        );
        let mut revoked = found();
        revoked.session_revoked = true;
        assert_eq!(spend(at(1)).decide(&revoked), SpendDecision::Refuse);
        let mut disabled = found();
        disabled.user.disabled = true;
        assert_eq!(spend(at(1)).decide(&disabled), SpendDecision::Refuse);
        let mut suspended = found();
        suspended.key_disabled = true;
        assert_eq!(spend(at(1)).decide(&suspended), SpendDecision::Refuse);
        // Reuse is still reuse while the key is disabled.
        suspended.spent = true;
        assert!(matches!(
            spend(at(1)).decide(&suspended),
            SpendDecision::Reuse { .. }
        ));
        let mut outsider = found();
        outsider.admitted = false;
        assert_eq!(spend(at(1)).decide(&outsider), SpendDecision::Refuse);
    }

    #[test]
    fn a_spent_token_is_reuse_and_revokes_its_session_once() {
        let mut spent = found();
        spent.spent = true;
        // The session's tokens are refused until the latest of them expires.
        assert_eq!(
            spend(at(1)).decide(&spent),
            SpendDecision::Reuse {
                revoke_until: Some(at(61))
            }
        );
        spent.access_expires_at = at(90);
        assert_eq!(
            spend(at(1)).decide(&spent),
            SpendDecision::Reuse {
                revoke_until: Some(at(90))
            }
        );
        spent.session_revoked = true;
        assert_eq!(
            spend(at(1)).decide(&spent),
            SpendDecision::Reuse { revoke_until: None }
        );
        // Another application's key cannot revoke this one's session.
        spent.application_id = "app_2".into();
        assert_eq!(spend(at(1)).decide(&spent), SpendDecision::Refuse);
    }
}
