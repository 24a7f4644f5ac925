//! Prometheus metrics. Labels have bounded cardinality: route templates,
//! status codes and error codes only; never key ids, user ids or addresses.

use assetpool_wire::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::RwLock;

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
    /// Handles of `requests` by route and status, so that counting a request
    /// allocates nothing and hashes only the route.
    request_counters: RwLock<HashMap<String, HashMap<u16, Counter>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("assetpool");
        let requests = Family::<RequestLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let login_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let hashing_in_flight = Gauge::default();
        let verify_storage_reads = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused requests by error code",
            failures.clone(),
        );
        registry.register(
            "login_duration_seconds",
            "Time to answer a login",
            login_seconds.clone(),
        );
        registry.register(
            "password_hashing_in_flight",
            "Password hashing jobs running or queued",
            hashing_in_flight.clone(),
        );
        registry.register(
            "verify_storage_reads",
            "Storage reads on the verify path (API key cache misses)",
            verify_storage_reads.clone(),
        );
        Metrics {
            registry,
            requests,
            failures,
            login_seconds,
            hashing_in_flight,
            verify_storage_reads,
            request_counters: RwLock::new(HashMap::new()),
        }
    }
}

impl Metrics {
    /// Counts one request on `route` (a route template) answered with `status`.
    pub fn count_request(&self, route: &str, status: u16) {
        if let Ok(counters) = self.request_counters.read() {
            if let Some(counter) = counters
                .get(route)
                .and_then(|by_status| by_status.get(&status))
            {
                counter.inc();
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
        if let Ok(mut counters) = self.request_counters.write() {
            counters
                .entry(route.to_owned())
                .or_default()
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

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
