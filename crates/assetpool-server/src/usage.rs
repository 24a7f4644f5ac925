//! Counting each request against its API key (usage per key).
//!
//! When usage tracking is on, the observe layer puts a [`UsageSlot`] on every
//! request, naming the client address. The credential check fills it with
//! the key's usage counters once the key is accepted; when the answer is
//! ready, the layer counts its outcome (2xx, 4xx by error code, 5xx) there.
//! Refusals of a known key before that point (revoked, expired, other
//! environment, over its limits) and login outcomes are counted by the core.

use assetpool_core::service::CachedKey;
use assetpool_core::usage::{KeyUsageCell, Outcome};
use assetpool_wire::ErrorCode;
use axum::response::Response;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// The request's client address and, once its key is accepted, the key's counters.
#[derive(Debug)]
pub struct UsageSlot {
    /// The client address (after trusted-proxy resolution).
    pub client: IpAddr,
    cell: OnceLock<Arc<KeyUsageCell>>,
}

impl UsageSlot {
    /// A slot for a request from `client`.
    pub fn new(client: IpAddr) -> Self {
        UsageSlot {
            client,
            cell: OnceLock::new(),
        }
    }

    /// Counts the request against `key` (the first key attached wins).
    pub fn attach(&self, key: &CachedKey) {
        if let Some(cell) = key.usage() {
            let _ = self.cell.set(cell.clone());
        }
    }

    /// Counts the outcome of `response` against the attached key, if any.
    pub fn count(&self, response: &Response) {
        if let Some(cell) = self.cell.get() {
            let code = response.extensions().get::<ErrorCode>().copied();
            cell.count(Outcome::of_status(response.status().as_u16(), code));
        }
    }
}
