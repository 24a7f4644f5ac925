//! PostgreSQL storage for assetpool, with sqlx.
//!
//! Several servers share one database. Every transaction that appends to the
//! change feed takes one advisory lock first, so change ids become visible in
//! increasing order, and announces the new id with `NOTIFY assetpool_changes`;
//! servers wake on the notification instead of polling.
//! Row locks (`SELECT ... FOR UPDATE`) make spending a refresh token and
//! rotating a key exactly-once across servers. Migrations are embedded.
//!
//! Connections use TLS as the URL's `sslmode` says (rustls with the ring
//! provider; `sslmode=verify-full&sslrootcert=CA` checks the server);
//! [`unprotected_transport_warning`] tells when a URL lets the traffic cross a
//! network without it.
//!
//! The storage traits are implemented once for both backends, in
//! `crates/assetpool-store-sql`, whose modules are compiled into this crate
//! with its `dialect` module: PostgreSQL's types, SQL fragments, locks and
//! notifications.

// The dialect first: its macros are used by the shared modules below.
#[macro_use]
mod dialect;
mod store;
mod transport;

// The storage code both backends share, compiled here with PostgreSQL's dialect.
#[path = "../../assetpool-store-sql/mod.rs"]
mod sql;

pub use store::{PoolSettings, PostgresStore};
pub use transport::unprotected_transport_warning;
