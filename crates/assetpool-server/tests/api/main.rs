//! HTTP integration tests: each test starts the real server on 127.0.0.1:0
//! with a fresh SQLite database and talks HTTP to it.

// Test code: a failed expectation is a test failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod admin;
mod alerts;
mod allow_lists;
mod applications;
mod bodies;
mod client_address;
mod console;
mod control_characters;
mod deployment;
mod discovery;
mod faults;
mod helpers;
mod introspect;
mod leaks;
mod lifecycle;
mod limits;
mod login;
mod metrics;
#[path = "../support/nginx.rs"]
mod nginx;
mod oauth;
mod openapi;
mod proxy;
mod refresh;
mod resource;
mod revocation;
mod scopes;
mod usage;
mod webhooks;
