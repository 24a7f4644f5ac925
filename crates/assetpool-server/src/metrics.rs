//! Prometheus metrics. Labels have bounded cardinality: route templates,
//! status codes and error codes only; never key ids, user ids or addresses.

use assetpool_core::AuthService;
use assetpool_wire::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route template (or `unmatched`).
    pub route: String,
    /// The HTTP status.
    pub status: u16,
}

/// Labels of the authentication failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The contract's error code.
    pub code: String,
}

/// Labels of the cache request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `api_key` or `token`.
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// Labels of the request latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route template (or `unmatched`, `upstream`).
    pub route: String,
}

/// Labels of the build information gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The version of the binary.
    pub version: &'static str,
}

/// Labels of the storage metrics: the `Store` method's name (a fixed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    /// The `Store` method, e.g. `api_key_by_hash`.
    pub operation: &'static str,
}

/// Labels of the tunnel refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TunnelRefusalLabels {
    /// The refusal's error code, which names the cap: `overloaded`
    /// (`--max-tunnels`, the server's) or `rate_limited`
    /// (`--max-tunnels-per-key`, the key's).
    pub code: &'static str,
}

/// A histogram of storage operation latencies (0.5 ms doubling to about 4 s).
fn storage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// A histogram of request latencies (50 µs doubling to about 3.3 s).
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Refusals by error code.
    pub failures: Family<FailureLabels, Counter>,
    /// Login latency in seconds.
    pub login_seconds: Histogram,
    /// Password hashing jobs running or queued.
    pub hashing_in_flight: Gauge,
    /// Storage reads made on the verify path (API key cache misses).
    pub verify_storage_reads: Counter,
    /// Requests refused because reading their unknown key would have gone
    /// over a lookup bound (per client network, or reads at once).
    pub key_lookups_refused: Counter,
    /// Password hashing jobs waiting for a worker.
    pub hashing_queued: Gauge,
    /// Logins refused because the hashing queue was full.
    pub hashing_rejected: Counter,
    /// Cache look-ups by cache and result.
    pub cache_requests: Family<CacheLabels, Counter>,
    /// Request latency by route.
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// 1, labelled with the version of the running binary.
    pub build_info: Family<BuildLabels, Gauge>,
    /// Storage operation latency by operation.
    pub storage_seconds: Family<StorageLabels, Histogram, fn() -> Histogram>,
    /// Failed storage operations (unavailable or other errors) by operation.
    pub storage_errors: Family<StorageLabels, Counter>,
    /// Webhook deliveries of alerts neither delivered nor given up.
    pub alert_outbox_backlog: Gauge,
    /// Reverse-proxy WebSocket tunnels open or being opened.
    pub tunnels_open: Gauge,
    /// WebSocket upgrades refused by a tunnel cap, by cap.
    pub tunnels_refused: Family<TunnelRefusalLabels, Counter>,
    /// Serialises copying the service's running totals into counters, so
    /// that two concurrent scrapes do not add the same difference twice.
    sync: Mutex<()>,
    /// Handles of `request_seconds` by route and of `requests` by route and
    /// status, so that counting a request allocates nothing and hashes only
    /// the route.
    request_counters: RwLock<HashMap<String, RequestHandles>>,
    /// 1 while the limits store (`--limits-store`) answers, 0 during an outage.
    pub limits_store_up: Gauge,
    /// Requests whose limits were decided by this server alone because the
    /// limits store did not answer.
    pub limits_store_fallbacks: Counter,
}

/// The latency histogram of one route, and its request counters by status.
type RequestHandles = (Histogram, HashMap<u16, Counter>);

/// The caches whose look-ups are counted.
const CACHES: [&str; 2] = ["api_key", "token"];

/// Brings `counter` up to the running total `total` (a counter never goes down).
fn catch_up(counter: &Counter, total: u64) {
    let counted = counter.get();
    if total > counted {
        counter.inc_by(total - counted);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("assetpool"),
            requests: Family::default(),
            failures: Family::default(),
            login_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            hashing_in_flight: Gauge::default(),
            verify_storage_reads: Counter::default(),
            key_lookups_refused: Counter::default(),
            hashing_queued: Gauge::default(),
            hashing_rejected: Counter::default(),
            cache_requests: Family::default(),
            request_seconds: Family::new_with_constructor(request_histogram),
            build_info: Family::default(),
            storage_seconds: Family::new_with_constructor(storage_histogram),
            storage_errors: Family::default(),
            alert_outbox_backlog: Gauge::default(),
            tunnels_open: Gauge::default(),
            tunnels_refused: Family::default(),
            sync: Mutex::new(()),
            request_counters: RwLock::new(HashMap::new()),
            limits_store_up: Gauge::default(),
            limits_store_fallbacks: Counter::default(),
        };
        metrics.register();
        metrics.register_http();
        metrics
            .build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        for code in [ErrorCode::Overloaded, ErrorCode::RateLimited] {
            let _ = metrics.tunnels_refused.get_or_create(&TunnelRefusalLabels {
                code: code.as_str(),
            });
        }
        for cache in CACHES {
            for result in ["hit", "miss"] {
                let _ = metrics
                    .cache_requests
                    .get_or_create(&CacheLabels { cache, result });
            }
        }
        metrics
    }
}

impl Metrics {
    /// Registers every metric under its exported name.
    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            self.requests.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused requests by error code",
            self.failures.clone(),
        );
        registry.register(
            "login_duration_seconds",
            "Time to answer a login",
            self.login_seconds.clone(),
        );
        registry.register(
            "password_hashing_in_flight",
            "Password hashing jobs running or queued",
            self.hashing_in_flight.clone(),
        );
        registry.register(
            "verify_storage_reads",
            "Storage reads on the verify path (API key cache misses)",
            self.verify_storage_reads.clone(),
        );
        registry.register(
            "key_lookups_refused",
            "Requests refused because reading their unknown API key would go over a lookup bound",
            self.key_lookups_refused.clone(),
        );
        registry.register(
            "password_hashing_queued",
            "Password hashing jobs waiting for a worker",
            self.hashing_queued.clone(),
        );
        registry.register(
            "password_hashing_rejected",
            "Logins refused at once because the password hashing queue was full",
            self.hashing_rejected.clone(),
        );
        registry.register(
            "cache_requests",
            "Look-ups of the API key and token caches by result",
            self.cache_requests.clone(),
        );
        registry.register(
            "storage_operation_duration_seconds",
            "Time of storage operations by operation",
            self.storage_seconds.clone(),
        );
        registry.register(
            "storage_errors",
            "Storage operations that failed (unavailable or other errors; not found and conflicts excluded)",
            self.storage_errors.clone(),
        );
        registry.register(
            "alert_outbox_backlog",
            "Alert webhook deliveries neither delivered nor given up",
            self.alert_outbox_backlog.clone(),
        );
        registry.register(
            "tunnels_open",
            "Reverse-proxy WebSocket tunnels open or being opened",
            self.tunnels_open.clone(),
        );
        registry.register(
            "tunnels_refused",
            "WebSocket upgrades refused by --max-tunnels (overloaded) or --max-tunnels-per-key (rate_limited)",
            self.tunnels_refused.clone(),
        );
    }

    /// Registers request latency and build information.
    fn register_http(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by route",
            self.request_seconds.clone(),
        );
        registry.register(
            "build_info",
            "1, labelled with the version of the running binary",
            self.build_info.clone(),
        );
    }

    /// Registers the limits store's metrics (only a server with `--limits-store` has them).
    pub fn register_limits_store(&mut self) {
        self.registry.register(
            "limits_store_up",
            "1 while the limits store (--limits-store) answers, 0 while rate limits and quotas are decided per server",
            self.limits_store_up.clone(),
        );
        self.registry.register(
            "limits_store_fallbacks",
            "Requests whose rate limit and quota this server decided alone because the limits store did not answer",
            self.limits_store_fallbacks.clone(),
        );
    }

    /// Counts one request on `route` (a route template) answered with
    /// `status` after `latency`.
    pub fn count_request(&self, route: &str, status: u16, latency: std::time::Duration) {
        if let Ok(counters) = self.request_counters.read() {
            if let Some((seconds, counter)) = counters
                .get(route)
                .and_then(|(seconds, by_status)| Some((seconds, by_status.get(&status)?)))
            {
                counter.inc();
                seconds.observe(latency.as_secs_f64());
                return;
            }
        }
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .clone();
        counter.inc();
        let seconds = self
            .request_seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .clone();
        seconds.observe(latency.as_secs_f64());
        if let Ok(mut counters) = self.request_counters.write() {
            counters
                .entry(route.to_owned())
                .or_insert_with(|| (seconds, HashMap::new()))
                .1
                .insert(status, counter);
        }
    }

    /// Counts one refusal with `code`.
    pub fn count_failure(&self, code: ErrorCode) {
        self.failures
            .get_or_create(&FailureLabels {
                code: code.as_str().to_owned(),
            })
            .inc();
    }

    /// The latency histogram and error counter of one storage operation,
    /// created once (callers keep the handles).
    pub fn storage_operation(&self, operation: &'static str) -> (Histogram, Counter) {
        let labels = StorageLabels { operation };
        let seconds = self.storage_seconds.get_or_create(&labels).clone();
        let errors = self.storage_errors.get_or_create(&labels).clone();
        (seconds, errors)
    }

    /// Copies the service's gauges and running totals into the metrics
    /// (at scrape time).
    pub fn observe_service(&self, service: &AuthService) {
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.hashing_in_flight
            .set(gauge(service.hashing_in_flight()));
        self.hashing_queued.set(gauge(service.hashing_queued()));
        let stats = service.cache_stats();
        // Poisoning only means another scrape panicked: the lock guards no data.
        let _guard = self
            .sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        catch_up(&self.verify_storage_reads, service.verify_storage_reads());
        catch_up(&self.key_lookups_refused, service.key_lookups_refused());
        catch_up(&self.hashing_rejected, service.hashing_rejected());
        if let Some(shared) = service.shared_limits() {
            let status = shared.status();
            self.limits_store_up.set(i64::from(status.up));
            catch_up(&self.limits_store_fallbacks, status.fallbacks);
        }
        for (cache, hits, misses) in [
            ("api_key", stats.key_hits, stats.key_misses),
            ("token", stats.token_hits, stats.token_misses),
        ] {
            for (result, total) in [("hit", hits), ("miss", misses)] {
                catch_up(
                    &self
                        .cache_requests
                        .get_or_create(&CacheLabels { cache, result }),
                    total,
                );
            }
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
