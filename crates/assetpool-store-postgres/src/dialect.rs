//! What PostgreSQL does its own way, for the storage code both backends
//! share (`crates/assetpool-store-sql`): the types, the SQL fragments that
//! differ (`GREATEST`/`LEAST`, row locks) and the steps several servers on
//! one database need (advisory locks, `NOTIFY`).

use crate::sql::rows::map_error;
use assetpool_core::store::StoreResult;

/// The store the shared code implements the storage traits for.
pub(crate) type Backend = crate::store::PostgresStore;
/// The database.
pub(crate) type Db = sqlx::Postgres;
/// A connection (or a transaction, which dereferences to one).
pub(crate) type Connection = sqlx::PgConnection;
/// A result row.
pub(crate) type Row = sqlx::postgres::PgRow;

/// The channel on which committed changes are announced.
pub(crate) const CHANGES_CHANNEL: &str = "assetpool_changes";
/// Advisory lock taken by every transaction that appends to the change feed,
/// so that change ids become visible in increasing order.
const CHANGE_FEED_LOCK: i64 = 0x6173_7365_7470_6f6c;

/// The larger of two values.
macro_rules! greatest {
    () => {
        "GREATEST"
    };
}

/// The smaller of two values.
macro_rules! least {
    () => {
        "LEAST"
    };
}

/// Locks the selected rows (of the tables named, when given) for this
/// transaction.
macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
    ($tables:literal) => {
        concat!(" FOR UPDATE OF ", $tables)
    };
}

/// Locks the selected rows of the tables named for an update that changes no
/// key column: unlike `FOR UPDATE`, it does not wait for (or block) the
/// key-share locks that inserts of rows referring to them take.
macro_rules! for_no_key_update {
    ($tables:literal) => {
        concat!(" FOR NO KEY UPDATE OF ", $tables)
    };
}

/// Locks the selected rows, skipping those another transaction holds
/// (so that several servers claiming rows at once never wait for each other).
macro_rules! skip_locked {
    () => {
        " FOR UPDATE SKIP LOCKED"
    };
}

/// Compares the text before it byte by byte, as Rust sorts strings.
macro_rules! collate_c {
    () => {
        " COLLATE \"C\""
    };
}

/// Put before a column to keep SQLite's planner from an index (see the
/// SQLite dialect); PostgreSQL plans a key list with its values and its
/// statistics, and needs nothing.
macro_rules! unindexed {
    () => {
        ""
    };
}

/// Share-locks the selected rows for this transaction: writers of those rows
/// wait for it, and it waits for them.
macro_rules! for_share {
    () => {
        " FOR SHARE"
    };
}

/// Takes the change-feed lock for the rest of the transaction. Every
/// transaction takes it after its row locks, so two never wait for each
/// other.
pub(crate) async fn lock_change_feed(connection: &mut Connection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGE_FEED_LOCK)
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Announces change `id` with `NOTIFY` (delivered at commit).
pub(crate) async fn announce_change(connection: &mut Connection, id: i64) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(id.to_string())
        .execute(&mut *connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Serialises this transaction with every other that locks one of
/// `subjects` in `namespace`: advisory transaction locks on
/// (`namespace`, hash of the subject), taken in the order given. Two-part
/// keys never collide with the change-feed lock.
pub(crate) async fn lock_subjects(
    connection: &mut Connection,
    namespace: i32,
    subjects: &[&str],
) -> StoreResult<()> {
    for subject in subjects {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(namespace)
            .bind(*subject)
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

/// Keeps other writers out of an import: `EXCLUSIVE` locks on every table
/// it writes (reads go on).
pub(crate) async fn lock_tables_for_import(connection: &mut Connection) -> StoreResult<()> {
    sqlx::query(
        "LOCK TABLE settings, applications, api_keys, users, application_members, \
         signing_keys, sessions, refresh_tokens, alerts, audit_log, audit_chain \
         IN EXCLUSIVE MODE",
    )
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    Ok(())
}

/// After an import that gave alerts and audit entries their `seq`: moves
/// the sequences past them, so the next alert or entry follows the last.
pub(crate) async fn advance_sequences_after_import(connection: &mut Connection) -> StoreResult<()> {
    for statement in [
        "SELECT setval(pg_get_serial_sequence('alerts', 'seq'), \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM alerts), false)",
        "SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log), false)",
    ] {
        sqlx::query(statement)
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

/// Whether a database error means "not now" rather than "never": class 08
/// (connection exception), 57P0x (the server is shutting down or starting)
/// and 57014 (the statement was cancelled: `--database-statement-timeout`).
pub(crate) fn cannot_answer_now(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().is_some_and(|code| {
        code.starts_with("08") || code.starts_with("57P") || code == QUERY_CANCELED
    })
}

/// SQLSTATE of a statement cancelled (by `statement_timeout`, among others).
const QUERY_CANCELED: &str = "57014";
