//! `Application::build` opens storage, binds the listener and assembles the
//! service; `run_until_stopped` serves until shutdown, then finishes in-flight
//! requests and flushes buffered state.

use crate::background::BackgroundTasks;
use crate::extract::TrustedProxies;
use crate::gateway::proxy::Upstream;
use crate::metrics::Metrics;
use crate::router::router;
use crate::settings::ServerSettings;
use crate::state::AppState;
use crate::storage::open_store;
use anyhow::Context as _;
use assetpool_core::password::PasswordHasher;
use assetpool_core::{AuthService, Clock, KeySealer, ServiceSettings, Store, SystemClock};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A server ready to run.
pub struct Application {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    local_addr: SocketAddr,
    state: AppState,
    settings: ServerSettings,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Application")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// The key sealer for the configured key-encryption key.
pub fn sealer(settings_kek: Option<&secrecy::SecretBox<str>>) -> anyhow::Result<KeySealer> {
    match settings_kek {
        Some(kek) => Ok(KeySealer::from_encoded_key(kek)?),
        None => Ok(KeySealer::plain()),
    }
}

impl Application {
    /// Opens storage, binds the listener and starts the service.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with an injected clock.
    pub async fn build_with_clock(
        settings: ServerSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let tls = settings
            .tls
            .as_ref()
            .map(crate::listener::tls_acceptor)
            .transpose()?;
        let store: Arc<dyn Store> = open_store(&settings.database_url)
            .await
            .context("cannot open the database")?;
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = match &settings.issuer {
            Some(issuer) => issuer.clone(),
            None => {
                store
                    .issuer_or_record(&format!("{scheme}://{local_addr}"))
                    .await?
            }
        };
        let sealer = sealer(settings.signing_key_kek.as_ref())?;
        if !sealer.encrypts() {
            tracing::warn!(
                "no key-encryption key configured: signing keys are stored unencrypted \
                 (set ASSETPOOL_SIGNING_KEY_KEK or --signing-key-kek-file)"
            );
        }
        let hasher = PasswordHasher::new(settings.argon2)?;
        let service_settings = ServiceSettings {
            environment: settings.environment,
            issuer,
            audience: settings.audience.clone(),
            token_ttl: chrono::Duration::from_std(settings.token_ttl)?,
            refresh_ttl: chrono::Duration::from_std(settings.refresh_ttl)?,
            key_cache_capacity: 1_000_000,
            token_cache_capacity: 1_000_000,
            hashing: settings.hashing,
            throttle: settings.throttle,
            max_staleness: settings.max_staleness,
        };
        let upstream = settings
            .upstream
            .as_ref()
            .map(|url| Upstream::new(url, settings.upstream_timeout))
            .transpose()
            .context("invalid upstream")?;
        let service = AuthService::start(store, clock, service_settings, sealer, hasher).await?;
        let state = AppState {
            service: Arc::new(service),
            metrics: Arc::new(Metrics::default()),
            upstream,
            trusted_proxies: TrustedProxies::new(settings.trusted_proxies.iter().copied()),
        };
        Ok(Application {
            listener,
            tls,
            local_addr,
            state,
            settings,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The base URL of the bound address (`http://ADDR` or `https://ADDR`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.local_addr)
    }

    /// The shared state (for seeding demo data and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and
    /// flushes buffered usage.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = self.state.service.clone();
        let tasks = BackgroundTasks::start(
            service.clone(),
            self.settings.change_poll_interval,
            self.settings.usage_flush_interval,
        );
        let app = router(self.state, self.settings.request_timeout);
        crate::listener::serve(
            self.listener,
            self.tls,
            app,
            self.settings.listener,
            shutdown,
        )
        .await;
        tasks.stop().await;
        if let Err(error) = service.flush_usage().await {
            tracing::error!(%error, "could not write key usage at shutdown");
        }
        Ok(())
    }
}
