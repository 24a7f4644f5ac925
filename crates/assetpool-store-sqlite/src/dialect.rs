//! What SQLite does its own way, for the storage code both backends share
//! (`crates/assetpool-store-sql`): the types, the SQL fragments that differ
//! (`MAX`/`MIN` of two values, no row locks) and the steps PostgreSQL needs
//! and SQLite does not (advisory locks, notifications).
//!
//! No row locks are needed: every transaction that writes starts with
//! `BEGIN IMMEDIATE`, so writers run one after the other.

use assetpool_core::store::StoreResult;

/// The store the shared code implements the storage traits for.
pub(crate) type Backend = crate::store::SqliteStore;
/// The database.
pub(crate) type Db = sqlx::Sqlite;
/// A connection (or a transaction, which dereferences to one).
pub(crate) type Connection = sqlx::SqliteConnection;
/// A result row.
pub(crate) type Row = sqlx::sqlite::SqliteRow;

/// The larger of two values.
macro_rules! greatest {
    () => {
        "MAX"
    };
}

/// The smaller of two values.
macro_rules! least {
    () => {
        "MIN"
    };
}

/// Locks the selected rows for this transaction (SQLite: the write lock of
/// `BEGIN IMMEDIATE` already covers every row).
macro_rules! for_update {
    () => {
        ""
    };
    ($tables:literal) => {
        ""
    };
}

/// Locks the selected rows for an update that changes no key (SQLite: the
/// write lock of `BEGIN IMMEDIATE` already covers every row).
macro_rules! for_no_key_update {
    ($tables:literal) => {
        ""
    };
}

/// Locks the selected rows, skipping those another transaction holds
/// (SQLite: one writer at a time, nothing to skip).
macro_rules! skip_locked {
    () => {
        ""
    };
}

/// Compares the text before it byte by byte, as Rust sorts strings (SQLite's default, `BINARY`, does).
macro_rules! collate_c {
    () => {
        ""
    };
}

/// Put before a column, keeps the planner from answering that condition
/// with an index (SQLite's unary `+`): without statistics SQLite would
/// rather walk an environment's or a state's index than a search's.
macro_rules! unindexed {
    () => {
        "+"
    };
}

/// Share-locks the selected rows for this transaction (see [`for_update`]).
macro_rules! for_share {
    () => {
        ""
    };
}

/// Serialises the transactions that announce changes (SQLite: done already).
pub(crate) async fn lock_change_feed(_connection: &mut Connection) -> StoreResult<()> {
    Ok(())
}

/// Tells the servers following the feed that change `id` is committed
/// (SQLite: they poll).
pub(crate) async fn announce_change(_connection: &mut Connection, _id: i64) -> StoreResult<()> {
    Ok(())
}

/// Serialises this transaction with every other that locks one of
/// `subjects` in `namespace` (SQLite: every writer is serialised already).
pub(crate) async fn lock_subjects(
    _connection: &mut Connection,
    _namespace: i32,
    _subjects: &[&str],
) -> StoreResult<()> {
    Ok(())
}

/// Keeps other writers out of an import (SQLite: the write lock of `BEGIN
/// IMMEDIATE` does).
pub(crate) async fn lock_tables_for_import(_connection: &mut Connection) -> StoreResult<()> {
    Ok(())
}

/// After an import that gave alerts and audit entries their `seq`: nothing
/// to do, as an `AUTOINCREMENT` table's counter follows the largest `seq`
/// inserted.
pub(crate) async fn advance_sequences_after_import(
    _connection: &mut Connection,
) -> StoreResult<()> {
    Ok(())
}

/// Whether a database error means "not now" rather than "never": the file
/// is locked past the busy timeout, or cannot be opened.
pub(crate) fn cannot_answer_now(error: &dyn sqlx::error::DatabaseError) -> bool {
    let message = error.message();
    message.contains("database is locked") || message.contains("unable to open")
}
