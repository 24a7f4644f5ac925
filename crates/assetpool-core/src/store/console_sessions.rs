//! The web console's sign-in sessions (`/console/`): the records and
//! [`ConsoleSessionStore`]. A session is known to storage by the SHA-256 of
//! its cookie's random secret only; whether it is still live is
//! [`ConsoleSession::is_live`]'s decision.

use super::{LoginAttempt, StoreResult, UserRecord};
use crate::ids::{ApplicationId, SessionId, UserId};
use crate::SecretHash;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

/// A console session to store at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsoleSession {
    /// Its id.
    pub id: SessionId,
    /// SHA-256 of the cookie's secret.
    pub secret_hash: SecretHash,
    /// Who signed in.
    pub user_id: UserId,
    /// The user's password version that was verified: a later password
    /// change ends the session.
    pub password_version: i64,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The absolute end, whatever the activity.
    pub expires_at: DateTime<Utc>,
}

/// What [`ConsoleSessionStore::open_console_session`] needs: the session,
/// and the sign-in attempt to take back from the throttle in the same
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionOpening {
    /// The session.
    pub session: NewConsoleSession,
    /// The throttled attempt that verified the password.
    pub attempt: LoginAttempt,
}

/// A stored console session, with its user as it is now and the
/// applications the user owns (role `owner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Its id.
    pub id: SessionId,
    /// The user, read with the session.
    pub user: UserRecord,
    /// The password version the session was opened with.
    pub password_version: i64,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// The latest recorded activity.
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end.
    pub expires_at: DateTime<Utc>,
    /// Signed out (or otherwise ended) at.
    pub ended_at: Option<DateTime<Utc>>,
    /// Applications in which the user has the role `owner`.
    pub owned_applications: Vec<ApplicationId>,
}

impl ConsoleSession {
    /// Whether the session still admits its user at `now`: not ended,
    /// before its absolute end and within `idle` of its latest activity, its
    /// user enabled and of the password version it was opened with.
    pub fn is_live(&self, now: DateTime<Utc>, idle: Duration) -> bool {
        self.ended_at.is_none()
            && now < self.expires_at
            && now < self.last_seen_at + idle
            && !self.user.disabled
            && self.user.password_version == self.password_version
    }

    /// Whether the user owns the application.
    pub fn owns(&self, application_id: &ApplicationId) -> bool {
        self.owned_applications.contains(application_id)
    }
}

/// The console's sessions.
#[async_trait]
pub trait ConsoleSessionStore: Send + Sync {
    /// Stores a session if its user is still enabled and of the verified
    /// password version, and takes the attempt back from the throttle, in
    /// one transaction; `false` (nothing written) otherwise.
    async fn open_console_session(&self, opening: &ConsoleSessionOpening) -> StoreResult<bool>;
    /// The session whose secret hashes to `secret_hash`, live or not.
    async fn console_session(
        &self,
        secret_hash: &SecretHash,
    ) -> StoreResult<Option<ConsoleSession>>;
    /// Records activity on a session (its idle expiry counts from there).
    async fn touch_console_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Ends a session (sign-out); `true` if it had not ended yet.
    async fn end_console_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Deletes sessions that ended or reached their absolute end before
    /// `before`; how many.
    async fn prune_console_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: DateTime<Utc>) -> ConsoleSession {
        ConsoleSession {
            id: SessionId::from("ses_1"),
            user: UserRecord {
                id: UserId::from("usr_1"),
                email: "ada@example.com".to_owned(),
                password_hash: String::new(),
                admin: true,
                disabled: false,
                created_at: now,
                password_version: 3,
                scopes: None,
            },
            password_version: 3,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::hours(12),
            ended_at: None,
            owned_applications: vec![],
        }
    }

    #[test]
    fn a_session_ends_with_sign_out_expiry_idleness_disable_and_password_change() {
        let now = crate::clock::from_millis(1_700_000_000_000);
        let idle = Duration::minutes(30);
        assert!(session(now).is_live(now + Duration::minutes(29), idle));
        assert!(!session(now).is_live(now + Duration::minutes(30), idle));
        let mut active = session(now);
        active.last_seen_at = now + Duration::hours(11);
        assert!(active.is_live(now + Duration::hours(11), idle));
        assert!(!active.is_live(now + Duration::hours(12), idle));
        let mut ended = session(now);
        ended.ended_at = Some(now);
        assert!(!ended.is_live(now, idle));
        let mut disabled = session(now);
        disabled.user.disabled = true;
        assert!(!disabled.is_live(now, idle));
        let mut changed = session(now);
        changed.user.password_version = 4;
        assert!(!changed.is_live(now, idle));
    }
}
