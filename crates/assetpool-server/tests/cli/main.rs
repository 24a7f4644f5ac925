//! Command-line tests: each test runs the real `assetpool` binary as a
//! subprocess against a fresh SQLite database in a temporary directory (or,
//! in `nodes`, several servers on one fresh PostgreSQL schema).

// Test code: a failed expectation is a test failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod applications;
mod at_rest;
mod audit;
mod check_leak;
mod config;
mod control_characters;
mod helpers;
mod key_flood;
mod key_lifecycle;
mod keys;
mod limits;
mod login_abuse;
mod metrics_listen;
mod monitoring;
mod nodes;
mod observability;
mod operations;
mod packaging;
mod postgres_tls;
#[path = "../support/redis.rs"]
mod redis_support;
mod scopes;
mod secrets;
mod serve;
mod serve_client;
mod serve_lifecycle;
mod settings;
mod shared_limits;
mod signing_keys;
mod tls;
mod transfer;
mod users;
