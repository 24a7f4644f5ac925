//! The SDK crates against the real server: `assetpool-client` (renewal, single
//! flight, revocation, retries) and `assetpool-verify` (the layer, key
//! rotation, introspection). The server runs in-process on 127.0.0.1:0 with
//! the system clock, because both crates judge expiry by real time.

// Test code: a failed expectation is a test failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod helpers;
mod http_settings;
mod jwks_keys;
mod redirects;
mod retry;
mod scopes;
mod stub;
mod verify;
