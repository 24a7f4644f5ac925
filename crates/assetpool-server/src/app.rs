//! `Application::build` opens storage, binds the listener and assembles the
//! service; `run_until_stopped` serves until shutdown, then finishes in-flight
//! requests and flushes buffered state.

use crate::background::BackgroundTasks;
use crate::extract::TrustedProxies;
use crate::gateway::upstream::Upstream;
use crate::key_encryption::KeyEncryption;
use crate::leak_reports::LeakReportKeys;
use crate::metered_store::MeteredStore;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::router::{metrics_router, router};
use crate::settings::ServerSettings;
use crate::state::{AppState, SharedState};
use crate::storage::open_server_store;
use anyhow::Context as _;
use assetpool_core::password::PasswordHasher;
use assetpool_core::{AuthService, Clock, ServiceSettings, Store, SystemClock};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A server ready to run.
pub struct Application {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    reloader: Reloader,
    local_addr: SocketAddr,
    /// The metrics-only listener (`--metrics-listen`) and its address.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    settings: ServerSettings,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Application")
            .field("local_addr", &self.local_addr)
            .field(
                "metrics_addr",
                &self.metrics_listener.as_ref().map(|(_, address)| address),
            )
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
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
        let (tls, reloader) = reloadable_files(&settings)?;
        let leak_reports = reloader.leak_reports.clone();
        let metrics = Arc::new(metrics_for(&settings));
        let store: Arc<dyn Store> =
            open_server_store(&settings.database_url, settings.database_pool)
                .await
                .context("cannot open the database")?;
        let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, &metrics));
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match &settings.metrics_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("could not listen for metrics on {address}"))?;
                let bound = listener.local_addr()?;
                Some((listener, bound))
            }
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = match &settings.issuer {
            Some(issuer) => issuer.clone(),
            None => {
                store
                    .issuer_or_record(&format!("{scheme}://{local_addr}"))
                    .await?
            }
        };
        let sealer = KeyEncryption::sealer_for_serving(
            &settings.database_url,
            settings.signing_key_kek.as_ref(),
            store.as_ref(),
        )
        .await?;
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
            alerts: settings.alerts.clone(),
            usage_tracking: settings.usage_tracking,
            key_lookups: assetpool_core::service::KeyLookupSettings::default(),
        };
        let upstream = upstream(&settings)?;
        let service = AuthService::start(store, clock, service_settings, sealer, hasher).await?;
        let service = with_limits_store(service, &settings).await;
        let state = AppState::new(SharedState {
            service: Arc::new(service),
            metrics,
            upstream,
            trusted_proxies: trusted_proxies(&settings),
            leak_reports,
            draining: Arc::new(AtomicBool::new(false)),
            console: settings.console,
        });
        Ok(Application {
            listener,
            tls,
            reloader,
            local_addr,
            metrics_listener,
            state,
            settings,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics-only listener (`--metrics-listen`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, address)| *address)
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

    /// What SIGHUP reloads (see [`Reloader::reload_on`]).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
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
        let mut tasks = BackgroundTasks::start(
            service.clone(),
            self.settings.change_poll_interval,
            self.settings.usage_flush_interval,
        );
        let webhooks = self.settings.webhooks.clone();
        tasks.add(|stop| crate::webhooks::spawn(service.clone(), webhooks, stop));
        let app = router(
            self.state.clone(),
            self.settings.request_timeout,
            self.metrics_listener.is_none(),
        )
        .context("cannot build the OpenAPI document")?;
        // One shutdown signal for both listeners, after the drain delay
        // during which /readyz answers 503.
        let (stop_sender, stop) = tokio::sync::watch::channel(false);
        let draining = self.state.draining.clone();
        let delay = self.settings.listener.shutdown_delay;
        let signal = tokio::spawn(async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    seconds = delay.as_secs(),
                    "draining: /readyz answers 503; the listener closes after the shutdown delay"
                );
                tokio::time::sleep(delay).await;
            }
            let _ = stop_sender.send(true);
        });
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            // An error means the sender is gone: stop too.
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let metrics_server = self.metrics_listener.map(|(listener, _)| {
            tokio::spawn(crate::listener::serve(
                listener,
                None,
                metrics_router(self.state),
                self.settings.listener,
                stopped(stop.clone()),
            ))
        });
        crate::listener::serve(
            self.listener,
            self.tls,
            app,
            self.settings.listener,
            stopped(stop),
        )
        .await;
        signal.abort();
        if let Some(metrics_server) = metrics_server {
            if let Err(error) = metrics_server.await {
                tracing::error!(%error, "the metrics listener failed");
            }
        }
        // Flush while the alert task still runs: it stores what the flush
        // raises, and what is still queued, when it stops.
        if let Err(error) = service.flush_usage().await {
            tracing::error!(%error, "could not write key usage at shutdown");
        }
        tasks.stop().await;
        Ok(())
    }
}

/// The TLS acceptor, and what SIGHUP reads again: the certificate and the
/// leak-report keys.
fn reloadable_files(settings: &ServerSettings) -> anyhow::Result<(Option<TlsAcceptor>, Reloader)> {
    let (tls, certificate) = match settings.tls.as_ref() {
        Some(files) => {
            let (acceptor, certificate) = crate::listener::tls_acceptor(files)?;
            (Some(acceptor), Some(certificate))
        }
        None => (None, None),
    };
    let reloader = Reloader {
        tls: certificate,
        leak_reports: Arc::new(LeakReportKeys::load(settings.leak_reports.clone())?),
    };
    Ok((tls, reloader))
}

/// The upstream of reverse-proxy mode, with the scopes its routes need.
fn upstream(settings: &ServerSettings) -> anyhow::Result<Option<Upstream>> {
    if settings.upstream.is_none() && !settings.route_scopes.is_empty() {
        anyhow::bail!("--route-scope applies to forwarded requests: it needs --upstream");
    }
    settings
        .upstream
        .as_ref()
        .map(|url| {
            Upstream::new(url, settings.upstream_timeout, settings.tunnels)
                .map(|upstream| upstream.with_route_scopes(settings.route_scopes.clone()))
        })
        .transpose()
        .context("invalid upstream")
}

/// The trusted proxies of `settings`, and the header read from them.
fn trusted_proxies(settings: &ServerSettings) -> TrustedProxies {
    let networks = settings.trusted_proxies.iter().copied();
    TrustedProxies::new(networks, settings.forwarded_header)
}

/// The metrics of a server with `settings` (the limits store's only with one).
fn metrics_for(settings: &ServerSettings) -> Metrics {
    let mut metrics = Metrics::default();
    if settings.limits_store.is_some() {
        metrics.register_limits_store();
    }
    metrics
}

/// `service` deciding rate limits and quotas in the `--limits-store`, if any.
async fn with_limits_store(service: AuthService, settings: &ServerSettings) -> AuthService {
    match &settings.limits_store {
        Some(client) => {
            let limits = crate::limits_store::RedisLimits::start(client.clone()).await;
            service.with_shared_limits(Arc::new(limits))
        }
        None => service,
    }
}
