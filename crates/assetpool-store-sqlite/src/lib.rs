//! SQLite storage for assetpool, with sqlx.
//!
//! The database runs in WAL mode with foreign keys on and `synchronous=FULL`,
//! so a committed write survives a crash. Migrations are embedded in the binary
//! and run at open. Every transaction that writes starts with
//! `BEGIN IMMEDIATE`, so concurrent writers (several processes on one file:
//! a server and the command line) queue on the busy timeout instead of failing.
//! A database file and the folders created for it are private to the user.

mod alerts;
mod audit;
mod changes;
mod files;
mod keys;
mod rows;
mod sessions;
mod signing_keys;
mod store;
mod throttle;
mod transfer;
mod usage;
mod users;
mod webhooks;

pub use store::SqliteStore;
