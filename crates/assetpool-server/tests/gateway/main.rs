//! Gateway integration tests: assetpool in front of a real upstream, asked by
//! nginx `auth_request` (`/auth/verify`) and as the reverse proxy itself
//! (`serve --upstream`). SQLite is enough here: the check is the one of the
//! API tests, which run it on every backend.

// Test code: a failed expectation is a test failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binary;
mod binary_tunnels;
mod feed_behind;
mod forward_auth;
mod forwarding;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod key_lifecycle;
mod memory;
#[path = "../support/nginx.rs"]
mod nginx;
mod reverse_proxy;
mod route_scopes;
mod scenarios;
mod settings;
mod spoofing;
mod stalled_reads;
mod tunnel_limits;
mod tunnels;
mod upgrades;
#[allow(dead_code)]
mod upstream;
