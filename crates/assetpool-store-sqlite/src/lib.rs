//! SQLite storage for assetpool, with sqlx.
//!
//! The database runs in WAL mode with foreign keys on and `synchronous=FULL`,
//! so a committed write survives a crash. Migrations are embedded in the binary
//! and run at open. Every transaction that writes starts with
//! `BEGIN IMMEDIATE`, so concurrent writers (several processes on one file:
//! a server and the command line) queue on the busy timeout instead of failing.
//! A database file and the folders created for it are private to the user.
//!
//! The storage traits are implemented once for both backends, in
//! `crates/assetpool-store-sql`, whose modules are compiled into this crate
//! with its `dialect` module: SQLite's types, SQL fragments and steps.

// The dialect first: its macros are used by the shared modules below.
#[macro_use]
mod dialect;
mod files;
mod store;

// The storage code both backends share, compiled here with SQLite's dialect.
#[path = "../../assetpool-store-sql/mod.rs"]
mod sql;

pub use store::SqliteStore;
