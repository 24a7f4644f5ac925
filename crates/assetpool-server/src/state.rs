//! State shared by every handler. It is built from leaf types: none of the
//! modules it names depends on this one.

use crate::extract::client_address::TrustedProxies;
use crate::gateway::upstream::Upstream;
use crate::leak_reports::LeakReportKeys;
use crate::metrics::Metrics;
use assetpool_core::AuthService;
use std::sync::Arc;

/// What handlers get from the router.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The authentication service.
    pub service: Arc<AuthService>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The upstream of reverse-proxy mode (`serve --upstream`), if any.
    pub upstream: Option<Upstream>,
    /// Reverse proxies whose forwarding headers name the client (`--trusted-proxy`).
    pub trusted_proxies: TrustedProxies,
    /// Who may report leaked keys, and the policy (`POST /api/keys/leaked`).
    pub leak_reports: Arc<LeakReportKeys>,
    /// Set at SIGTERM: `/readyz` answers 503 from then on, while requests
    /// are still served until the listener closes (`--shutdown-delay`).
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Serve the web console at `/console/` (`serve --console`).
    pub console: bool,
}

impl axum::extract::FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxies.clone()
    }
}
