//! Micro-benchmarks of the verify path's pieces, through the public API:
//!
//! - `key/parse_checksum_hash`: shape + CRC32 checksum + SHA-256 of an API key;
//! - `key/authenticate_cached`: the same plus the key cache look-up and the
//!   status, expiry and environment checks (`AuthService::authenticate_key`);
//! - `token/verify_cold`: `KeyRing::verify`, the EdDSA signature and claims;
//! - `token/authenticate_warm`: `AuthService::authenticate_token` on a cached
//!   token (hash + cache hit + expiry + revoked-session set + application binding);
//! - `revocation/revoked_token`: the same for a token whose session is in a
//!   revoked set of 10,000 sessions (refused with `token_revoked`);
//! - `verify/authenticate_warm`: both steps, as a protected request runs them.
//!
//! Run with `cargo bench -p assetpool-core --bench hot_path`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_core::api_key::ApiKeySecret;
use assetpool_core::export::{
    ExportRecord, ExportedApplication, ExportedSession, ExportedSigningKey, ExportedUser,
};
use assetpool_core::hashing::HashingPoolSettings;
use assetpool_core::password::{Argon2Settings, PasswordHasher};
use assetpool_core::service::new_signing_key_record;
use assetpool_core::store::prelude::*;
use assetpool_core::throttle::ThrottleSettings;
use assetpool_core::token::{AccessClaims, KeyRing, TokenExpectations};
use assetpool_core::{
    AuthService, Environment, ErrorCode, KeySealer, SecretHash, ServiceError, ServiceSettings,
    Store, SystemClock,
};
use assetpool_store_sqlite::SqliteStore;
use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const ISSUER: &str = "http://bench.assetpool.test";
const AUDIENCE: &str = "assetpool";
const REVOKED_SESSIONS: usize = 10_000;

/// Polls a future that completes without waiting (a cache hit) once.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited: not a cache hit"),
    }
}

struct Fixture {
    _folder: tempfile::TempDir,
    service: AuthService,
    ring: KeyRing,
    key: String,
    token: String,
    revoked_token: String,
}

fn key_json(id: &str, application: &str, secret: &ApiKeySecret) -> ExportRecord {
    serde_json::from_value(serde_json::json!({
        "type": "api_key",
        "id": id,
        "application_id": application,
        "name": "bench key",
        "environment": "production",
        "key_hash": secret.hash().to_hex(),
        "prefix": secret.prefix(),
        "created_at": Utc::now().timestamp_millis(),
        "expires_at": null,
        "revoked_at": null,
        "revoked_reason": null,
        "successor_id": null,
        "last_used_at": null,
    }))
    .unwrap()
}

fn claims(session: &str, now: chrono::DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "usr_bench".into(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        exp: now.timestamp() + 86_400,
        jti: format!("jti-{session}"),
        sid: session.into(),
        app: "app_bench".into(),
        env: Environment::Production,
        client_id: "app_bench".into(),
        email: "bench@example.test".into(),
        key_id: None,
        scope: None,
    }
}

async fn fixture() -> Fixture {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", folder.path().join("bench.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let now = Utc::now();
    let sealer = KeySealer::plain();
    let signing = new_signing_key_record(now, &sealer).unwrap();
    let secret = ApiKeySecret::generate(Environment::Production);
    let mut records = vec![
        ExportRecord::Application(ExportedApplication {
            id: "app_bench".into(),
            name: "bench".into(),
            created_at: now,
            members_only: false,
        }),
        key_json("key_bench", "app_bench", &secret),
        ExportRecord::User(ExportedUser {
            id: "usr_bench".into(),
            email: "bench@example.test".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            admin: false,
            disabled: false,
            created_at: now,
            scopes: None,
        }),
        ExportRecord::SigningKey(ExportedSigningKey::from(&signing)),
    ];
    for index in 0..=REVOKED_SESSIONS {
        records.push(ExportRecord::Session(ExportedSession {
            id: format!("ses_{index}").into(),
            user_id: "usr_bench".into(),
            application_id: "app_bench".into(),
            api_key_id: "key_bench".into(),
            created_at: now,
            access_expires_at: now + Duration::days(1),
            // Session 0 is live; the others are revoked.
            revoked_at: (index > 0).then_some(now),
            scopes: None,
        }));
    }
    store.import_records(&records).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let settings = ServiceSettings {
        environment: Environment::Production,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        token_ttl: Duration::days(1),
        refresh_ttl: Duration::days(30),
        key_cache_capacity: 100_000,
        token_cache_capacity: 100_000,
        hashing: HashingPoolSettings::default(),
        throttle: ThrottleSettings::default(),
        max_staleness: std::time::Duration::from_secs(3600),

        alerts: assetpool_core::alerts::AlertSettings::default(),
        usage_tracking: true,
        key_lookups: Default::default(),
    };
    let hasher = PasswordHasher::new(Argon2Settings::default()).unwrap();
    let service = AuthService::start(store, Arc::new(SystemClock), settings, sealer, hasher)
        .await
        .unwrap();
    let ring = KeyRing::from_records(&[signing], &KeySealer::plain(), now).unwrap();
    let token = ring.sign(&claims("ses_0", now)).unwrap();
    let revoked_token = ring.sign(&claims("ses_1", now)).unwrap();
    Fixture {
        _folder: folder,
        service,
        ring,
        key: secret.expose().to_owned(),
        token,
        revoked_token,
    }
}

fn hot_path(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(fixture());
    let service = &fixture.service;
    let expectations = TokenExpectations {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        environment: Environment::Production,
    };

    // Fill the caches; a first read of the key goes to storage.
    let key = runtime
        .block_on(service.authenticate_key(Some(&fixture.key), None))
        .unwrap();
    service
        .authenticate_token(&key.record, Some(&fixture.token))
        .unwrap();

    criterion.bench_function("key/parse_checksum_hash", |bench| {
        bench.iter(|| {
            let secret = ApiKeySecret::parse(black_box(&fixture.key)).unwrap();
            black_box(secret.hash())
        });
    });
    criterion.bench_function("key/sha256_only", |bench| {
        bench.iter(|| black_box(SecretHash::of(black_box(&fixture.key))));
    });
    criterion.bench_function("key/authenticate_cached", |bench| {
        bench
            .iter(|| ready(service.authenticate_key(Some(black_box(&fixture.key)), None)).unwrap());
    });
    criterion.bench_function("token/verify_cold", |bench| {
        let now = Utc::now();
        bench.iter(|| {
            fixture
                .ring
                .verify(black_box(&fixture.token), &expectations, now)
                .unwrap()
        });
    });
    criterion.bench_function("token/authenticate_warm", |bench| {
        bench.iter(|| {
            service
                .authenticate_token(&key.record, Some(black_box(&fixture.token)))
                .unwrap()
        });
    });
    // The revoked token's claims are cached by its first (refused) use.
    let refused = service.authenticate_token(&key.record, Some(&fixture.revoked_token));
    assert!(matches!(
        refused,
        Err(ServiceError::Refused {
            code: ErrorCode::TokenRevoked,
            ..
        })
    ));
    criterion.bench_function("revocation/revoked_token", |bench| {
        bench.iter(|| {
            service
                .authenticate_token(&key.record, Some(black_box(&fixture.revoked_token)))
                .unwrap_err()
        });
    });
    criterion.bench_function("verify/authenticate_warm", |bench| {
        bench.iter(|| {
            let key = ready(service.authenticate_key(Some(black_box(&fixture.key)), None)).unwrap();
            service
                .authenticate_token(&key.record, Some(black_box(&fixture.token)))
                .unwrap()
        });
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
