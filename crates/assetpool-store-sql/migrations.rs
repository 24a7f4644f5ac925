//! Errors of the embedded migrations, in words an operator can act on.

use assetpool_core::store::StoreError;
use sqlx::migrate::MigrateError;

/// A migration error as a [`StoreError`]: a database that a newer assetpool
/// migrated (a migration this binary does not have) says so and what to do,
/// rather than sqlx's "previously applied but is missing".
pub(crate) fn migration_error(error: MigrateError) -> StoreError {
    match error {
        MigrateError::VersionMissing(version) => StoreError::Other(format!(
            "the database was migrated by a newer assetpool (migration {version} is unknown \
             to this binary, version {}): run the newer binary (docs/OPERATIONS.md, upgrades)",
            env!("CARGO_PKG_VERSION")
        )),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}
