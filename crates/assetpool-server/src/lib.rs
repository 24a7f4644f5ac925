//! The assetpool server: the axum application, its configuration, background
//! tasks and the `assetpool` command line.
//!
//! Code map:
//! - [`app`]: `Application::build` and `run_until_stopped`;
//! - [`router`]: every route and layer, each route declared once with its
//!   entry in the OpenAPI document ([`openapi`]); [`controllers`]: thin handlers;
//! - [`state`]: what handlers share, built from leaf types (such as
//!   [`leak_reports`], the senders allowed to report leaked keys);
//! - [`error`]: the one mapping of errors to HTTP; [`extract`]: credentials
//!   and the verify path's check, the client address, strict bodies;
//! - [`gateway`]: `/auth/verify` (forward auth) and the reverse proxy (`--upstream`);
//! - [`console`]: the web console at `/console/` (`serve --console`);
//! - [`background`]: change-feed follower, usage writer, housekeeping;
//! - [`webhooks`]: alert webhook delivery from the outbox;
//! - [`key_encryption`]: the key-encryption key of signing keys at rest;
//! - [`reload`]: what SIGHUP reads again (TLS certificate, leak-report keys);
//! - [`cli`]: the `assetpool` commands.

pub mod app;
pub mod background;
pub mod cli;
pub mod console;
pub mod controllers;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod key_encryption;
pub mod leak_reports;
pub mod limits_store;
pub mod listener;
pub mod metered_store;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod reload;
pub mod router;
pub mod settings;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod usage;
pub mod webhooks;

pub use app::Application;
pub use settings::ServerSettings;
