//! Fixtures shared by the contract tests: fixed instants, records with random
//! secrets, and readers of the change feed.

use assetpool_core::ids::{ApplicationId, SessionId};
use assetpool_core::store::{
    ApiKeyRecord, ApplicationRecord, Change, LoginAttempt, NewSession, SessionOpening,
    SpendRefreshToken, UserRecord,
};
use assetpool_core::{Environment, ScopeSet, SecretHash, Store};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Lifetime of the access tokens of the sessions made here.
pub(crate) const ACCESS_MINUTES: i64 = 60;
/// Lifetime of the refresh tokens of the sessions made here.
pub(crate) const REFRESH_DAYS: i64 = 30;

/// The instant `minutes` after the suite's fixed origin (whole milliseconds,
/// as storage keeps them).
pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap() + Duration::minutes(minutes)
}

/// The set of `text` (space-separated scopes).
pub(crate) fn scopes(text: &str) -> ScopeSet {
    ScopeSet::parse(text).unwrap()
}

/// The hash of a fresh random secret.
pub(crate) fn random_hash() -> SecretHash {
    SecretHash::of(&Uuid::new_v4().to_string())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

pub(crate) async fn new_application(
    store: &dyn Store,
    created_at: DateTime<Utc>,
) -> ApplicationRecord {
    let application = ApplicationRecord {
        id: unique("app").into(),
        name: "Contract test application".to_owned(),
        created_at,
        members_only: false,
    };
    store.create_application(&application).await.unwrap();
    application
}

/// A usable key record (not stored).
pub(crate) fn key_record(
    application_id: &ApplicationId,
    environment: Environment,
    created_at: DateTime<Utc>,
) -> ApiKeyRecord {
    let id = unique("key");
    ApiKeyRecord {
        prefix: format!("apk_{}_{}", environment.short_name(), &id[4..10]),
        name: format!("key {id}"),
        id: id.into(),
        application_id: application_id.clone(),
        environment,
        key_hash: random_hash(),
        created_at,
        expires_at: None,
        revoked_at: None,
        revoked_reason: None,
        successor_id: None,
        last_used_at: None,
        limits: Default::default(),
        disabled_at: None,
        metadata: None,
        owner: None,
        allowed_networks: None,
        scopes: None,
    }
}

pub(crate) async fn new_key(
    store: &dyn Store,
    application_id: &ApplicationId,
    created_at: DateTime<Utc>,
) -> ApiKeyRecord {
    let key = key_record(application_id, Environment::Production, created_at);
    store.insert_api_key(&key).await.unwrap();
    key
}

pub(crate) fn user_record(email: &str, created_at: DateTime<Utc>) -> UserRecord {
    UserRecord {
        id: unique("usr").into(),
        email: email.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${}", Uuid::new_v4().simple()),
        admin: false,
        disabled: false,
        created_at,
        password_version: 0,
        scopes: None,
    }
}

pub(crate) async fn new_user(
    store: &dyn Store,
    email: &str,
    created_at: DateTime<Utc>,
) -> UserRecord {
    let user = user_record(email, created_at);
    store.create_user(&user).await.unwrap();
    user
}

/// Opens a session at `created_at` for `user` through `key`.
pub(crate) async fn new_session(
    store: &dyn Store,
    user: &UserRecord,
    key: &ApiKeyRecord,
    created_at: DateTime<Utc>,
) -> NewSession {
    new_session_with(store, user, key, created_at, None).await
}

/// Opens a session at `created_at` for `user` through `key`, granted `scopes`.
pub(crate) async fn new_session_with(
    store: &dyn Store,
    user: &UserRecord,
    key: &ApiKeyRecord,
    created_at: DateTime<Utc>,
    scopes: Option<ScopeSet>,
) -> NewSession {
    let session = NewSession {
        id: unique("ses").into(),
        user_id: user.id.clone(),
        application_id: key.application_id.clone(),
        api_key_id: key.id.clone(),
        created_at,
        access_expires_at: created_at + Duration::minutes(ACCESS_MINUTES),
        refresh_hash: random_hash(),
        refresh_expires_at: created_at + Duration::days(REFRESH_DAYS),
        scopes,
    };
    let opening = SessionOpening {
        session: session.clone(),
        password_version: user.password_version,
        attempt: attempt(&user.email, "192.0.2.1", created_at),
        user_scopes: user.scopes.clone(),
    };
    assert!(store.open_session(&opening).await.unwrap());
    session
}

/// A login attempt of `account` from `address` at `at` (window: 15 minutes).
pub(crate) fn attempt(account: &str, address: &str, at: DateTime<Utc>) -> LoginAttempt {
    LoginAttempt {
        account: account.to_owned(),
        address: address.to_owned(),
        api_key_id: Some("key_evidence".into()),
        at,
        window_start: at - Duration::minutes(15),
    }
}

/// A refresh at `now` presenting `refresh_hash` with a key of `application_id`.
pub(crate) fn spend(
    refresh_hash: SecretHash,
    application_id: &ApplicationId,
    now: DateTime<Utc>,
) -> SpendRefreshToken {
    SpendRefreshToken {
        refresh_hash,
        application_id: application_id.clone(),
        now,
        new_refresh_hash: random_hash(),
        new_refresh_expires_at: now + Duration::days(REFRESH_DAYS),
        access_expires_at: now + Duration::minutes(ACCESS_MINUTES),
    }
}

/// A user with one application, one key and one session, all from `at(0)`.
pub(crate) struct LoggedIn {
    pub(crate) user: UserRecord,
    pub(crate) key: ApiKeyRecord,
    pub(crate) session: NewSession,
}

pub(crate) async fn logged_in(store: &dyn Store, email: &str) -> LoggedIn {
    let application = new_application(store, at(0)).await;
    let key = new_key(store, &application.id, at(0)).await;
    let user = new_user(store, email, at(0)).await;
    let session = new_session(store, &user, &key, at(0)).await;
    LoggedIn { user, key, session }
}

/// Every change after `after`, oldest first.
pub(crate) async fn changes_after(store: &dyn Store, after: i64) -> Vec<Change> {
    store
        .changes_since(after, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.change)
        .collect()
}

/// The sessions named by `SessionRevoked` changes after `after`.
pub(crate) async fn revoked_in_feed(store: &dyn Store, after: i64) -> Vec<SessionId> {
    changes_after(store, after)
        .await
        .into_iter()
        .filter_map(|change| match change {
            Change::SessionRevoked { session_id, .. } => Some(session_id),
            _ => None,
        })
        .collect()
}

/// The ids of the sessions `revoked_sessions(now)` lists, sorted.
pub(crate) async fn revoked_at(store: &dyn Store, now: DateTime<Utc>) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = store
        .revoked_sessions(now)
        .await
        .unwrap()
        .into_iter()
        .map(|revoked| revoked.session_id)
        .collect();
    ids.sort();
    ids
}

/// `ids`, sorted.
pub(crate) fn sorted<const N: usize>(ids: [&SessionId; N]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = ids.iter().map(|id| (*id).clone()).collect();
    ids.sort();
    ids
}
