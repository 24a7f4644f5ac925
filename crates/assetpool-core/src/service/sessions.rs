//! Login (password grant), refresh-token rotation and logout.

use super::{AuthService, CachedKey};
use crate::alerts::{AlertRule, Trigger};
use crate::api_key::random_token;
use crate::hashing::Admission;
use crate::ids::{self, ApplicationId, KeyId, SessionId};
use crate::password::{normalize_email, Verification, MAX_PASSWORD_BYTES};
use crate::scopes::{self, ScopeSet};
use crate::store::{
    AttemptAdmission, LoginAttempt, NewSession, RefreshOutcome, SessionOpening, SpendRefreshToken,
    ThrottleState, UserRecord,
};
use crate::throttle;
use crate::token::AccessClaims;
use crate::usage::Outcome;
use crate::{SecretHash, ServiceError};
use assetpool_wire::text::contains_control;
use assetpool_wire::ErrorCode;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::sync::Arc;

const REFRESH_TOKEN_PREFIX: &str = "apr_";
const REFRESH_TOKEN_BODY: usize = 43;
const MAX_USERNAME_BYTES: usize = 320;

/// Tokens handed out by a login or a refresh.
pub struct IssuedTokens {
    /// The signed access token.
    pub access_token: SecretString,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The single-use refresh token.
    pub refresh_token: SecretString,
    /// The access token's scopes (`None`: unrestricted).
    pub scope: Option<ScopeSet>,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IssuedTokens")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// The password grant: checks the API key, the requested scopes
    /// (`scope`, space-separated; absent or empty asks for nothing more than
    /// key and user allow), the throttle and the password, then opens a
    /// session granted [`scopes::grant`].
    ///
    /// A malformed scope, or one the key does not allow, is refused
    /// (`invalid_scope`) before anything is counted or hashed; one the user
    /// does not allow only once the password was verified (so that the
    /// answer says nothing about an account to whoever lacks its password),
    /// and the attempt is then taken back, not counted as a failure.
    ///
    /// The attempt runs to its end in a task of its own: a client that goes
    /// away (dropping this future) cannot stop it between the password check
    /// and its bookkeeping, so the attempt is counted by the throttle, in the
    /// key's usage and by the alert rules whether or not anyone waits for the
    /// answer.
    pub async fn login(
        self: &Arc<Self>,
        api_key: Option<&str>,
        username: &str,
        password: SecretString,
        scope: Option<&str>,
        client_address: IpAddr,
    ) -> Result<IssuedTokens, ServiceError> {
        let service = Arc::clone(self);
        let api_key = api_key.map(str::to_owned);
        let username = username.to_owned();
        let scope = scope.map(str::to_owned);
        let attempt = tokio::spawn(async move {
            let key = service
                .authenticate_key(api_key.as_deref(), Some(client_address))
                .await?;
            let login = Login {
                username: &username,
                password,
                scope: scope.as_deref(),
                client_address,
            };
            let result = service.login_with_key(&key, login).await;
            count_login(&key, &result);
            result
        });
        attempt
            .await
            .map_err(|error| ServiceError::Internal(format!("login task failed: {error}")))?
    }

    async fn login_with_key(
        &self,
        key: &CachedKey,
        login: Login<'_>,
    ) -> Result<IssuedTokens, ServiceError> {
        let Login {
            username,
            password,
            scope,
            client_address,
        } = login;
        check_login_input(username, &password)?;
        let requested = requested_scopes(scope)?;
        if !scopes::allows(key.record.scopes.as_ref(), requested.as_ref()) {
            return Err(ErrorCode::InvalidScope.into());
        }
        // A place in the hashing pool first: when it is full, 503 at once,
        // and nothing is counted against the account.
        let admission = self.hashing.admit()?;
        let (attempt, before) = self
            .count_attempt(username, client_address, Some(key.record.id.clone()))
            .await?;
        // Whether the key's application admits this account is read for
        // every login, alongside the user: a refused outsider costs exactly
        // what a wrong password does.
        let (user, admitted) = tokio::try_join!(
            self.store.user_by_email(&attempt.account),
            self.store
                .application_admits(&key.record.application_id, &attempt.account),
        )?;
        let verification = self
            .verify_password(admission, user.as_ref(), password.clone())
            .await?;
        let opened = match (user, verification) {
            (Some(user), Verification::Match { needs_rehash }) if !user.disabled && admitted => {
                if needs_rehash {
                    self.upgrade_hash(&user, password).await;
                }
                let Ok(granted) = scopes::grant(
                    key.record.scopes.as_ref(),
                    user.scopes.as_ref(),
                    requested.as_ref(),
                ) else {
                    self.store.settle_login_refused(&attempt).await?;
                    return Err(ErrorCode::InvalidScope.into());
                };
                self.open_session(key, user, granted, &attempt).await?
            }
            _ => None,
        };
        let Some((user, session, refresh_token)) = opened else {
            return Err(self.refuse_attempt(&attempt, &before).await);
        };
        let access_token = self.sign_access_token(
            &user,
            &session.id,
            &session.application_id,
            &session.api_key_id,
            session.scopes.clone(),
            attempt.at,
        )?;
        Ok(self.issued(access_token, refresh_token, session.scopes))
    }

    /// Counts a login attempt (an API login or a console sign-in) with the
    /// throttle before its password is checked, in the storage transaction
    /// that decides with [`throttle::retry_after`]: the counters as they
    /// were before it, or `too_many_attempts`.
    pub(super) async fn count_attempt(
        &self,
        username: &str,
        client_address: IpAddr,
        api_key_id: Option<KeyId>,
    ) -> Result<(LoginAttempt, ThrottleState), ServiceError> {
        let now = self.clock.now();
        let throttle = &self.settings.throttle;
        let attempt = LoginAttempt {
            account: normalize_email(username),
            address: throttle::address_key(client_address, throttle.ipv6_prefix),
            api_key_id,
            at: now,
            window_start: now - throttle.window,
        };
        let decide = |state: &ThrottleState| throttle::retry_after(throttle, state, now);
        match self.store.count_login_attempt(&attempt, &decide).await? {
            AttemptAdmission::Counted(before) => Ok((attempt, before)),
            AttemptAdmission::Refused {
                retry_after_seconds,
            } => Err(ServiceError::Throttled {
                retry_after_seconds,
            }),
        }
    }

    /// Settles a counted attempt as a failure (raising `failed_logins` at
    /// its threshold): the `invalid_credentials` to answer, or the storage
    /// error that kept it from being settled.
    pub(super) async fn refuse_attempt(
        &self,
        attempt: &LoginAttempt,
        before: &ThrottleState,
    ) -> ServiceError {
        if let Err(error) = self.store.settle_login_failure(attempt).await {
            return error.into();
        }
        self.check_account_failures(before, attempt);
        ErrorCode::InvalidCredentials.into()
    }

    /// Opens the session of a verified login; `None` when the user's password
    /// changed, the user was disabled or the application stopped admitting
    /// the user while the password was being checked.
    async fn open_session(
        &self,
        key: &CachedKey,
        user: UserRecord,
        granted: Option<ScopeSet>,
        attempt: &LoginAttempt,
    ) -> Result<Option<(UserRecord, NewSession, SecretString)>, ServiceError> {
        let now = attempt.at;
        let refresh_token = new_refresh_token();
        let session = NewSession {
            id: SessionId::new(),
            user_id: user.id.clone(),
            application_id: key.record.application_id.clone(),
            api_key_id: key.record.id.clone(),
            created_at: now,
            access_expires_at: now + self.settings.token_ttl,
            refresh_hash: SecretHash::of(refresh_token.expose_secret()),
            refresh_expires_at: now + self.settings.refresh_ttl,
            scopes: granted,
        };
        let opening = SessionOpening {
            session,
            password_version: user.password_version,
            attempt: attempt.clone(),
            user_scopes: user.scopes.clone(),
        };
        if !self.store.open_session(&opening).await? {
            return Ok(None);
        }
        Ok(Some((user, opening.session, refresh_token)))
    }

    /// Raises `failed_logins` for an account whose failures (all addresses)
    /// reach the threshold with this one.
    fn check_account_failures(&self, before: &ThrottleState, attempt: &LoginAttempt) {
        let threshold = self.alerts.settings().failed_logins_per_account;
        let previous = before
            .account
            .filter(|counter| counter.last_failure >= attempt.window_start)
            .map_or(0, |counter| counter.failures);
        let failures = previous.saturating_add(1);
        if failures < threshold {
            return;
        }
        let evidence = serde_json::json!({
            "failures": failures,
            "threshold": threshold,
            "clientAddress": attempt.address,
            "apiKey": attempt.api_key_id,
        });
        self.alerts.trigger(Trigger {
            rule: AlertRule::FailedLogins,
            api_key_id: None,
            account: Some(attempt.account.clone()),
            stage: None,
            evidence,
            at: attempt.at,
            episode_since: None,
        });
    }

    /// Verifies a password in the pool place `admission`; unknown users cost
    /// a dummy verification.
    pub(super) async fn verify_password(
        &self,
        admission: Admission,
        user: Option<&UserRecord>,
        password: SecretString,
    ) -> Result<Verification, ServiceError> {
        let hasher = self.hasher.clone();
        let stored = user.map(|user| user.password_hash.clone());
        admission
            .run(move || match stored {
                Some(stored) => hasher.verify(&password, &stored),
                None => {
                    hasher.verify_dummy(&password);
                    Ok(Verification::Mismatch)
                }
            })
            .await?
            .map_err(|error| ServiceError::Internal(error.to_string()))
    }

    /// Re-hashes a password whose stored hash uses outdated parameters. Best
    /// effort: a full pool or a storage error leaves the old hash in place.
    /// The new hash is written only while the password is still of the
    /// version that was verified, so a password changed meanwhile is never
    /// overwritten with a hash of the old one.
    pub(super) async fn upgrade_hash(&self, user: &UserRecord, password: SecretString) {
        let hasher = self.hasher.clone();
        let Ok(Ok(new_hash)) = self.hashing.run(move || hasher.hash(&password)).await else {
            return;
        };
        if let Err(error) = self
            .store
            .upgrade_password_hash(&user.id, user.password_version, &new_hash)
            .await
        {
            tracing::warn!(%error, user_id = %user.id, "could not store the upgraded password hash");
        }
    }

    /// Spends a refresh token and issues the next pair. Reuse of a spent token
    /// revokes the whole session.
    ///
    /// The new access token keeps the session's scopes, within the key's
    /// current ones and, when `scope` asks for some (RFC 6749 section 6),
    /// within those: a refresh may narrow, never widen. A malformed `scope`
    /// is refused before the refresh token is spent.
    pub async fn refresh(
        &self,
        api_key: Option<&str>,
        refresh_token: &str,
        scope: Option<&str>,
        client_address: IpAddr,
    ) -> Result<IssuedTokens, ServiceError> {
        let key = self.authenticate_key(api_key, Some(client_address)).await?;
        let result = match requested_scopes(scope) {
            Ok(requested) => {
                self.refresh_with_key(&key, refresh_token, requested.as_ref())
                    .await
            }
            Err(error) => Err(error),
        };
        if let Some(usage) = key.usage() {
            usage.count(request_outcome(&result));
        }
        result
    }

    async fn refresh_with_key(
        &self,
        key: &CachedKey,
        refresh_token: &str,
        requested: Option<&ScopeSet>,
    ) -> Result<IssuedTokens, ServiceError> {
        if !is_refresh_token_shape(refresh_token) {
            return Err(ErrorCode::InvalidRefreshToken.into());
        }
        let now = self.clock.now();
        let next = new_refresh_token();
        let spend = SpendRefreshToken {
            refresh_hash: SecretHash::of(refresh_token),
            application_id: key.record.application_id.clone(),
            now,
            new_refresh_hash: SecretHash::of(next.expose_secret()),
            new_refresh_expires_at: now + self.settings.refresh_ttl,
            access_expires_at: now + self.settings.token_ttl,
        };
        match self.store.spend_refresh_token(&spend).await? {
            RefreshOutcome::Renewed(renewed) => {
                // The session's grant, within the presented key's current
                // scopes and what the refresh asks for.
                let within_key =
                    scopes::restrict(renewed.scopes.as_ref(), key.record.scopes.as_ref());
                let scope = scopes::restrict(within_key.as_ref(), requested);
                let access_token = self.sign_access_token(
                    &renewed.user,
                    &renewed.session_id,
                    &key.record.application_id,
                    &renewed.api_key_id,
                    scope.clone(),
                    now,
                )?;
                Ok(self.issued(access_token, next, scope))
            }
            RefreshOutcome::Reused { session_id } => {
                tracing::warn!(session_id = %session_id, "refresh token reused; session revoked");
                self.mark_session_revoked(&session_id, now + self.settings.token_ttl);
                let evidence = serde_json::json!({ "session": session_id });
                self.alerts.trigger(Trigger::for_key(
                    AlertRule::RefreshTokenReused,
                    &key.record.id,
                    evidence,
                    now,
                ));
                Err(ErrorCode::InvalidRefreshToken.into())
            }
            RefreshOutcome::Invalid => Err(ErrorCode::InvalidRefreshToken.into()),
        }
    }

    /// Ends the session of an accepted token.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let session_id = SessionId::from(claims.sid.as_str());
        self.store.revoke_session(&session_id, now).await?;
        let until = chrono::DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or(now);
        self.mark_session_revoked(&session_id, until.max(now + self.settings.token_ttl));
        Ok(())
    }

    /// Signs an access token of `session_id`, opened through the key
    /// `session_key` (the `key_id` claim: its tokens are refused while it is
    /// disabled).
    fn sign_access_token(
        &self,
        user: &UserRecord,
        session_id: &SessionId,
        application_id: &ApplicationId,
        session_key: &KeyId,
        scope: Option<ScopeSet>,
        now: DateTime<Utc>,
    ) -> Result<SecretString, ServiceError> {
        let issued_at = now.timestamp();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user.id.to_string(),
            iat: issued_at,
            nbf: issued_at,
            exp: issued_at + self.settings.token_ttl.num_seconds(),
            jti: ids::new_token_id(),
            sid: session_id.to_string(),
            app: application_id.to_string(),
            env: self.settings.environment,
            client_id: application_id.to_string(),
            email: user.email.clone(),
            key_id: Some(session_key.to_string()),
            scope,
        };
        let token = self
            .key_ring()
            .sign(&claims)
            .map_err(|_| ServiceError::Internal("no active signing key".into()))?;
        self.tokens.insert(SecretHash::of(&token), Arc::new(claims));
        Ok(SecretString::from(token))
    }

    fn issued(
        &self,
        access_token: SecretString,
        refresh_token: SecretString,
        scope: Option<ScopeSet>,
    ) -> IssuedTokens {
        IssuedTokens {
            access_token,
            expires_in: u64::try_from(self.settings.token_ttl.num_seconds()).unwrap_or(0),
            refresh_token,
            scope,
        }
    }
}

/// What a login presents besides its API key.
struct Login<'a> {
    username: &'a str,
    password: SecretString,
    scope: Option<&'a str>,
    client_address: IpAddr,
}

/// The scopes a login asks for: `None` when it asks for none in particular
/// (no `scope`, or an empty one, as RFC 6749 section 3.1 reads an empty
/// parameter); `invalid_scope` when malformed.
fn requested_scopes(scope: Option<&str>) -> Result<Option<ScopeSet>, ServiceError> {
    match scope.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => ScopeSet::parse(text).map(Some).map_err(|error| {
            ServiceError::refused_with(ErrorCode::InvalidScope, error.to_string())
        }),
    }
}

fn new_refresh_token() -> SecretString {
    random_token(REFRESH_TOKEN_PREFIX, REFRESH_TOKEN_BODY)
}

fn is_refresh_token_shape(token: &str) -> bool {
    token
        .strip_prefix(REFRESH_TOKEN_PREFIX)
        .is_some_and(|body| {
            body.len() == REFRESH_TOKEN_BODY
                && body.bytes().all(|byte| byte.is_ascii_alphanumeric())
        })
}

/// Refuses a login body that no account could match, before anything is
/// hashed or counted: a password over the byte limit, a username over its
/// limit, or either holding a control character.
pub(super) fn check_login_input(
    username: &str,
    password: &SecretString,
) -> Result<(), ServiceError> {
    let password = password.expose_secret();
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::invalid_request(
            "the password is longer than 1024 bytes",
        ));
    }
    if username.len() > MAX_USERNAME_BYTES {
        return Err(ServiceError::invalid_request("the username is too long"));
    }
    if contains_control(username) || contains_control(password) {
        return Err(ServiceError::invalid_request(
            "the username and password may not contain control characters",
        ));
    }
    Ok(())
}

/// Counts a login in its key's usage: the request with its outcome, and the
/// login or failed login.
fn count_login(key: &CachedKey, result: &Result<IssuedTokens, ServiceError>) {
    let Some(usage) = key.usage() else {
        return;
    };
    usage.count(request_outcome(result));
    match result {
        Ok(_) => usage.count(Outcome::Login),
        Err(error) if error.code() == ErrorCode::InvalidCredentials => {
            usage.count(Outcome::LoginFailed);
        }
        Err(_) => {}
    }
}

/// The outcome a request answered with `result` is counted as.
fn request_outcome<T>(result: &Result<T, ServiceError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(error) => {
            let code = error.code();
            Outcome::of_status(code.http_status(), Some(code))
        }
    }
}
