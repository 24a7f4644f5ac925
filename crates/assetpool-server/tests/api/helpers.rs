//! `TestApp`: the real server on 127.0.0.1:0 with a fresh SQLite database and
//! a clock the test controls, plus the admin operations on the same database.

use assetpool_core::admin::{Admin, CreateApiKey};
use assetpool_core::ids::{ApplicationId, KeyId};
use assetpool_core::limits::KeyLimits;
use assetpool_core::password::{Argon2Settings, PasswordHasher};
use assetpool_core::{Environment, ManualClock};
use assetpool_server::{Application, ServerSettings};
use chrono::{TimeZone, Utc};
use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery staple 42";

/// The storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// PostgreSQL, or `None` (said on stderr) when it is not reachable and not required.
    pub async fn postgres(test: &str) -> Option<Backend> {
        // Creating and dropping a schema checks reachability and the requirement once.
        assetpool_store_tests::postgres::fresh_schema(test)
            .await
            .map(|_| Backend::Postgres)
    }
}

/// Runs each test body once on SQLite (module `sqlite`) and once on
/// PostgreSQL (module `postgres`, skipped when PostgreSQL is unreachable).
#[macro_export]
macro_rules! backend_tests {
    ($($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test]
                async fn $name() {
                    let Some($backend) = $crate::helpers::Backend::postgres(stringify!($name)).await
                    else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub admin: Admin,
    pub clock: Arc<ManualClock>,
    #[allow(dead_code)]
    pub database_url: String,
    pub state: assetpool_server::state::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _storage: Storage,
}

/// Keeps the test's database alive for the test (a folder, or a schema to drop).
#[allow(dead_code)]
pub enum Storage {
    Sqlite(tempfile::TempDir),
    Postgres(assetpool_store_tests::postgres::TestSchema),
    /// Another server owns the database.
    None,
}

async fn fresh_storage(backend: Backend) -> (String, Storage) {
    match backend {
        Backend::Sqlite => {
            let directory = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}/test.db", directory.path().display());
            (url, Storage::Sqlite(directory))
        }
        Backend::Postgres => {
            let schema = assetpool_store_tests::postgres::fresh_schema("a test")
                .await
                .expect("PostgreSQL was reachable a moment ago");
            (schema.url.clone(), Storage::Postgres(schema))
        }
    }
}

pub struct TestKey {
    pub id: KeyId,
    pub key: String,
    pub application: ApplicationId,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut ServerSettings),
    ) -> TestApp {
        let (database_url, storage) = fresh_storage(backend).await;
        Self::start(database_url, storage, configure).await
    }

    /// Starts the server on `database_url`, keeping `storage` alive with it.
    pub async fn start(
        database_url: String,
        storage: Storage,
        configure: impl FnOnce(&mut ServerSettings),
    ) -> TestApp {
        let mut settings = ServerSettings::new(database_url.clone());
        settings.listen = "127.0.0.1:0".to_owned();
        settings.change_poll_interval = Duration::from_millis(50);
        configure(&mut settings);
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
        ));
        let application = Application::build_with_clock(settings, clock.clone())
            .await
            .expect("server starts");
        let address = format!("http://{}", application.local_addr());
        let state = application.state().clone();
        let store = state.service.store().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until_stopped(async move {
            // Dropping the app without `stop` keeps the server running.
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        let hasher = PasswordHasher::new(Argon2Settings::default()).unwrap();
        // The command line on this database finds the server's key-encryption key.
        let sealer = state.service.sealer().clone();
        // Owner webhooks as the server allows them (`--allow-private-webhooks`).
        let targets = state.service.alerts().settings().owner_webhook_targets;
        let admin = Admin::new(store, clock.clone(), hasher, sealer).with_webhook_targets(targets);
        TestApp {
            address,
            client: reqwest::Client::new(),
            admin,
            clock,
            database_url,
            state,
            stop: Some(stop),
            task: Some(task),
            _storage: storage,
        }
    }

    /// Stops the server as SIGTERM does (graceful: buffered state is
    /// flushed) and waits for it; returns the storage to start another on.
    pub async fn stop(mut self) -> Storage {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
        std::mem::replace(&mut self._storage, Storage::None)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn create_key(&self, environment: Environment) -> TestKey {
        self.create_key_in(environment, None).await
    }

    pub async fn create_key_in(
        &self,
        environment: Environment,
        application: Option<&ApplicationId>,
    ) -> TestKey {
        self.create_key_with(environment, application, KeyLimits::default())
            .await
    }

    pub async fn create_key_with(
        &self,
        environment: Environment,
        application: Option<&ApplicationId>,
        limits: KeyLimits,
    ) -> TestKey {
        let issued = self
            .admin
            .create_api_key(CreateApiKey {
                name: "test key".to_owned(),
                environment,
                application_id: application.cloned(),
                expires_in: None,
                limits,
                metadata: None,
                owner: None,
                allowed_networks: None,
                scopes: None,
            })
            .await
            .unwrap();
        TestKey {
            id: issued.record.id.clone(),
            key: issued.secret.expose().to_owned(),
            application: issued.record.application_id.clone(),
        }
    }

    /// A key of `environment` restricted to `scopes` (space-separated; `None`: unrestricted).
    pub async fn create_scoped_key(
        &self,
        environment: Environment,
        scopes: Option<&str>,
    ) -> TestKey {
        let issued = self
            .admin
            .create_api_key(CreateApiKey {
                scopes: scopes.map(|text| assetpool_core::ScopeSet::parse(text).unwrap()),
                ..CreateApiKey::new("scoped key", environment)
            })
            .await
            .unwrap();
        TestKey {
            id: issued.record.id.clone(),
            key: issued.secret.expose().to_owned(),
            application: issued.record.application_id.clone(),
        }
    }

    /// A user restricted to `scopes` (space-separated; `None`: unrestricted).
    pub async fn create_scoped_user(&self, email: &str, scopes: Option<&str>) {
        self.admin
            .create_user_with(
                email,
                SecretString::from(PASSWORD),
                false,
                scopes.map(|text| assetpool_core::ScopeSet::parse(text).unwrap()),
            )
            .await
            .unwrap();
    }

    /// Logs in asking for `scope` (none asked when `None`).
    pub async fn login_with_scope(
        &self,
        key: &str,
        username: &str,
        scope: Option<&str>,
    ) -> Response {
        let mut body = json!({"username": username, "password": PASSWORD});
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        self.client
            .post(self.url("/api/authentication/login"))
            .header("x-api-key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_user(&self, email: &str) {
        self.admin
            .create_user(email, SecretString::from(PASSWORD), false)
            .await
            .unwrap();
    }

    /// A production key and a user, logged in: (key, access token, refresh token).
    pub async fn logged_in(&self) -> (TestKey, String, String) {
        let key = self.create_key(Environment::Production).await;
        self.create_user("alice@example.com").await;
        let body = self.login(&key.key, "alice@example.com", PASSWORD).await;
        assert_eq!(body.status(), 200);
        let body: Value = body.json().await.unwrap();
        (
            key,
            body["accessToken"].as_str().unwrap().to_owned(),
            body["refreshToken"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn login(&self, key: &str, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/authentication/login"))
            .header("x-api-key", key)
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh(&self, key: &str, refresh_token: &str) -> Response {
        self.client
            .post(self.url("/api/authentication/refresh"))
            .header("x-api-key", key)
            .json(&json!({"refreshToken": refresh_token}))
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` without credentials and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `count` logins at once through `key`, each as another (unknown) user.
    pub async fn concurrent_logins(&self, key: &str, count: usize) -> Vec<Response> {
        let attempts = (0..count).map(|index| async move {
            self.login(key, &format!("user{index}@example.com"), PASSWORD)
                .await
        });
        futures_util::future::join_all(attempts).await
    }

    pub async fn resource(&self, key: &str, token: &str) -> Response {
        self.client
            .get(self.url("/v1/resource"))
            .header("x-api-key", key)
            .header("x-api-token", token)
            .send()
            .await
            .unwrap()
    }

    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .header(CONTENT_TYPE, content_type)
            .body(body)
    }

    /// Waits (up to `limit`) until `check` holds, returning how long it took.
    pub async fn eventually<F, Fut>(&self, limit: Duration, mut check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = std::time::Instant::now();
        loop {
            if check().await {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "condition not met within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts the status and error code of a response; returns the body.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(body["message"].is_string());
    body
}
