//! A real server with the system clock, a production key and a user.

use assetpool_client::{Client, ClientBuilder, Credentials};
use assetpool_core::admin::{Admin, CreateApiKey};
use assetpool_core::password::{Argon2Settings, PasswordHasher};
use assetpool_core::{Environment, SystemClock};
use assetpool_server::state::AppState;
use assetpool_server::{Application, ServerSettings};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

pub const EMAIL: &str = "alice@example.com";
pub const PASSWORD: &str = "correct horse battery staple 42";

pub struct Server {
    pub address: String,
    pub admin: Admin,
    pub key: String,
    #[allow(dead_code)]
    pub state: AppState,
    pub http: reqwest::Client,
    _directory: tempfile::TempDir,
}

impl Server {
    /// A server with a token lifetime of `token_ttl`.
    pub async fn spawn(token_ttl: Duration) -> Server {
        Self::spawn_with(|settings| settings.token_ttl = token_ttl).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut ServerSettings)) -> Server {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", directory.path().display());
        let mut settings = ServerSettings::new(url);
        settings.listen = "127.0.0.1:0".to_owned();
        settings.change_poll_interval = Duration::from_millis(50);
        configure(&mut settings);
        let application = Application::build(settings).await.unwrap();
        let address = format!("http://{}", application.local_addr());
        let state = application.state().clone();
        let store = state.service.store().clone();
        tokio::spawn(application.run_until_stopped(std::future::pending()));
        let hasher = PasswordHasher::new(Argon2Settings::default()).unwrap();
        // The command line on this database finds the server's key-encryption key.
        let sealer = state.service.sealer().clone();
        let admin = Admin::new(store, Arc::new(SystemClock), hasher, sealer);
        let key = create_key(&admin, None).await;
        admin
            .create_user(EMAIL, SecretString::from(PASSWORD), false)
            .await
            .unwrap();
        Server {
            address,
            admin,
            key,
            state,
            http: reqwest::Client::new(),
            _directory: directory,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A client builder for the server's key and user.
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder(&self.address, &self.key, Credentials::new(EMAIL, PASSWORD))
    }

    pub fn client(&self) -> Client {
        self.client_builder().build().unwrap()
    }

    /// A counter of `/metrics`, by the start of its line (0 when absent).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().split(' ').next())
            .map_or(0, |value| value.parse().unwrap())
    }

    /// Successful logins the server answered.
    pub async fn logins(&self) -> u64 {
        self.metric(
            r#"assetpool_http_requests_total{route="/api/authentication/login",status="200"}"#,
        )
        .await
    }

    /// Successful refreshes the server answered.
    pub async fn refreshes(&self) -> u64 {
        self.metric(
            r#"assetpool_http_requests_total{route="/api/authentication/refresh",status="200"}"#,
        )
        .await
    }

    /// Logs out the session of `token`, as another process of the same user might.
    pub async fn logout(&self, token: &str) {
        let response = self
            .http
            .post(self.url("/api/authentication/logout"))
            .header("x-api-key", &self.key)
            .header("x-api-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    /// The status and error code the server gives `token` on /v1/resource.
    pub async fn resource_status(&self, token: &str) -> (u16, String) {
        let response = self
            .http
            .get(self.url("/v1/resource"))
            .header("x-api-key", &self.key)
            .header("x-api-token", token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// A production key, in a new application or in `application`.
pub async fn create_key(admin: &Admin, application: Option<&str>) -> String {
    admin
        .create_api_key(CreateApiKey {
            name: "sdk test".to_owned(),
            environment: Environment::Production,
            application_id: application.map(Into::into),
            expires_in: None,
            limits: Default::default(),
            metadata: None,
            owner: None,
            allowed_networks: None,
            scopes: None,
        })
        .await
        .unwrap()
        .secret
        .expose()
        .to_owned()
}

/// Waits up to `limit` for `check` to hold.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
