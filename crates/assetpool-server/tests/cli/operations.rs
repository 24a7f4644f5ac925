//! Day-2 operations through the binary: a database that a newer assetpool
//! migrated is refused with a line that says so (an old node restarted in the
//! middle of a rolling upgrade), on both backends.

use crate::helpers::{assert_clean_failure, Db};

async fn a_database_migrated_by_a_newer_binary_is_refused_clearly(db: Db) {
    db.create_key("shop", "prod");
    let checksum = if db.url.starts_with("sqlite:") {
        "X'00'"
    } else {
        "'\\x00'::bytea"
    };
    db.sql(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', TRUE, {checksum}, 0)"
    ))
    .await;
    for args in [
        &["keys", "list"][..],
        &["serve", "--listen", "127.0.0.1:0"][..],
    ] {
        let line = assert_clean_failure(&db.run(args));
        assert!(
            line.contains("migrated by a newer assetpool") && line.contains("99999"),
            "{args:?}: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_binary_is_refused_clearly_sqlite() {
    a_database_migrated_by_a_newer_binary_is_refused_clearly(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_binary_is_refused_clearly_postgres() {
    if let Some(db) = Db::postgres("newer_schema").await {
        a_database_migrated_by_a_newer_binary_is_refused_clearly(db).await;
    }
}
