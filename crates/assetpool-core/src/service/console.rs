//! The web console's sign-in: the API login's throttle and password check
//! (one code path, `AuthService::count_attempt` and
//! `AuthService::refuse_attempt`), without an API key, opening a console
//! session ([`crate::store::ConsoleSessionStore`]) instead of a token
//! session, audited as the user (`console.sign_in`; the sign-out is
//! `Admin::end_console_session`). A cookie is checked for the shape of a
//! secret before any look-up.

use super::AuthService;
use crate::admin::Actor;
use crate::api_key::random_token;
use crate::ids::SessionId;
use crate::password::Verification;
use crate::store::{ConsoleSession, ConsoleSessionOpening, NewConsoleSession, UserRecord};
use crate::{SecretHash, ServiceError};
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::sync::Arc;

/// The prefix of a console session's secret.
const CONSOLE_SECRET_PREFIX: &str = "apc_";
/// Characters after it (base62: about 256 bits).
const CONSOLE_SECRET_CHARS: usize = 43;

/// Whether `value` has the shape of a console session's secret as
/// `AuthService::console_sign_in` makes it (`apc_` and 43 base62
/// characters): anything else is no session, known without a look-up.
fn is_console_secret_shape(value: &str) -> bool {
    value
        .strip_prefix(CONSOLE_SECRET_PREFIX)
        .is_some_and(|body| {
            body.len() == CONSOLE_SECRET_CHARS
                && body.bytes().all(|byte| byte.is_ascii_alphanumeric())
        })
}

/// Activity is recorded at most this often per session, so a busy page
/// does not write on every request.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// How long a console session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleTimeouts {
    /// Without activity, a session ends after this.
    pub idle: Duration,
    /// Whatever the activity, a session ends this long after sign-in.
    pub absolute: Duration,
}

/// A successful console sign-in: the cookie's secret (shown to nobody but
/// the browser) and the user.
pub struct ConsoleSignIn {
    /// The session's secret, for the cookie.
    pub secret: SecretString,
    /// Who signed in.
    pub user: UserRecord,
}

impl std::fmt::Debug for ConsoleSignIn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConsoleSignIn")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Signs a user in to the web console with username and password. The
    /// attempt is throttled and counted exactly as an API login's (the same
    /// counters, decision and answers: `invalid_credentials` for a wrong
    /// password, an unknown or a disabled user; `too_many_attempts`), and
    /// runs to its end in a task of its own, as a login does.
    pub async fn console_sign_in(
        self: &Arc<Self>,
        username: &str,
        password: SecretString,
        client_address: IpAddr,
        timeouts: ConsoleTimeouts,
    ) -> Result<ConsoleSignIn, ServiceError> {
        let service = Arc::clone(self);
        let username = username.to_owned();
        let attempt = tokio::spawn(async move {
            service
                .console_sign_in_now(&username, password, client_address, timeouts)
                .await
        });
        attempt
            .await
            .map_err(|error| ServiceError::Internal(format!("sign-in task failed: {error}")))?
    }

    async fn console_sign_in_now(
        &self,
        username: &str,
        password: SecretString,
        client_address: IpAddr,
        timeouts: ConsoleTimeouts,
    ) -> Result<ConsoleSignIn, ServiceError> {
        super::sessions::check_login_input(username, &password)?;
        let admission = self.hashing.admit()?;
        let (attempt, before) = self.count_attempt(username, client_address, None).await?;
        let user = self.store.user_by_email(&attempt.account).await?;
        let verification = self
            .verify_password(admission, user.as_ref(), password.clone())
            .await?;
        let user = match (user, verification) {
            (Some(user), Verification::Match { needs_rehash }) if !user.disabled => {
                if needs_rehash {
                    self.upgrade_hash(&user, password).await;
                }
                user
            }
            _ => return Err(self.refuse_attempt(&attempt, &before).await),
        };
        let secret = random_token(CONSOLE_SECRET_PREFIX, CONSOLE_SECRET_CHARS);
        let opening = ConsoleSessionOpening {
            session: NewConsoleSession {
                id: SessionId::new(),
                secret_hash: SecretHash::of(secret.expose_secret()),
                user_id: user.id.clone(),
                password_version: user.password_version,
                created_at: attempt.at,
                expires_at: attempt.at + timeouts.absolute,
            },
            attempt: attempt.clone(),
        };
        // Audited as the user, in the transaction that opens the session.
        let store = self.admin(Actor::console_user(&user)).audited_store(
            "console.sign_in",
            &user.email,
            serde_json::json!({
                "session": opening.session.id,
                "clientAddress": attempt.address,
            }),
        );
        if !store.open_console_session(&opening).await? {
            return Err(self.refuse_attempt(&attempt, &before).await);
        }
        Ok(ConsoleSignIn { secret, user })
    }

    /// The live console session of a cookie's secret, its activity
    /// recorded; `None` when it is unknown, ended, expired, idle too long,
    /// or its user was disabled or changed password since, and, without
    /// asking storage, when the value does not have the shape of a secret
    /// this service makes (`apc_` and 43 base62 characters).
    pub async fn console_session(
        &self,
        secret: &str,
        timeouts: ConsoleTimeouts,
    ) -> Result<Option<ConsoleSession>, ServiceError> {
        if !is_console_secret_shape(secret) {
            return Ok(None);
        }
        let Some(session) = self.store.console_session(&SecretHash::of(secret)).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if !session.is_live(now, timeouts.idle) {
            return Ok(None);
        }
        if now - session.last_seen_at >= Duration::seconds(TOUCH_EVERY_SECONDS) {
            self.store.touch_console_session(&session.id, now).await?;
        }
        Ok(Some(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shape_of_a_made_secret_is_looked_up() {
        let made = random_token(CONSOLE_SECRET_PREFIX, CONSOLE_SECRET_CHARS);
        assert!(is_console_secret_shape(made.expose_secret()));
        let body = "a".repeat(CONSOLE_SECRET_CHARS);
        assert!(is_console_secret_shape(&format!("apc_{body}")));
        for value in [
            String::new(),
            "apc_".to_owned(),
            format!("apc_{body}a"),
            format!("apc_{}", &body[1..]),
            format!("apx_{body}"),
            format!("apc_{}-", &body[1..]),
            format!("apc_{}é", &body[2..]),
            "x".repeat(10_000),
        ] {
            assert!(!is_console_secret_shape(&value), "{value}");
        }
    }
}
