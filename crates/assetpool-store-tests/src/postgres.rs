//! A fresh PostgreSQL schema per test, on the server named by
//! `ASSETPOOL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! When that server cannot be reached, tests that need it are skipped with a
//! line on stderr, unless `ASSETPOOL_REQUIRE_POSTGRES=1` (as in CI), which
//! turns the skip into a failure.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

/// The default test server.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The base URL of the test server.
pub fn base_url() -> String {
    std::env::var("ASSETPOOL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn required() -> bool {
    std::env::var("ASSETPOOL_REQUIRE_POSTGRES").is_ok_and(|value| value == "1")
}

fn reachable() -> bool {
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    *REACHABLE.get_or_init(|| {
        let Ok(options) = PgConnectOptions::from_str(&base_url()) else {
            return false;
        };
        let address = format!("{}:{}", options.get_host(), options.get_port());
        address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .is_some_and(|address| {
                TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
            })
    })
}

/// A schema created for one test and dropped when this is dropped.
#[derive(Debug)]
pub struct TestSchema {
    /// URL of the test server with `search_path` set to the schema.
    pub url: String,
    /// The schema's name.
    pub schema: String,
}

/// Creates a fresh schema, or returns `None` (after saying so) when PostgreSQL
/// is not reachable and not required. Panics when it is required but unreachable.
pub async fn fresh_schema(test: &str) -> Option<TestSchema> {
    if !reachable() {
        assert!(
            !required(),
            "PostgreSQL is required (ASSETPOOL_REQUIRE_POSTGRES=1) but {} is not reachable",
            base_url()
        );
        // Written to the process's stderr directly, not through the test
        // harness's capture, so a plain `cargo test` shows what it skipped.
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test} on PostgreSQL: {} is not reachable (set ASSETPOOL_REQUIRE_POSTGRES=1 to fail instead)",
            base_url()
        );
        return None;
    }
    let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
    let options = PgConnectOptions::from_str(&base_url()).expect("valid PostgreSQL URL");
    let mut connection = options.connect().await.expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .expect("create a test schema");
    connection.close().await.ok();
    let separator = if base_url().contains('?') { '&' } else { '?' };
    Some(TestSchema {
        url: format!("{}{separator}options[search_path]={schema}", base_url()),
        schema,
    })
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let schema = &self.schema;
        let dropped = execute_detached(
            base_url(),
            vec![
                // The test's servers may still hold a transaction on the
                // schema (a background task stopped mid-way while this drop
                // blocks the test's thread): end their sessions first.
                format!(
                    "SELECT pg_terminate_backend(pid) FROM (SELECT DISTINCT l.pid FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = '{schema}' AND l.pid <> pg_backend_pid()) holders"
                ),
                format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            ],
        );
        if !dropped {
            eprintln!("could not drop test schema {schema}");
        }
    }
}

/// Runs `statements` in order on a connection to `url` from a thread with a
/// small runtime of its own, for `Drop` implementations (they run outside
/// any async context of the test). Stops at the first that fails; returns
/// whether all ran.
pub fn execute_detached(url: String, statements: Vec<String>) -> bool {
    let ran = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let mut connection = PgConnectOptions::from_str(&url)
                .ok()?
                .connect()
                .await
                .ok()?;
            for statement in &statements {
                sqlx::query(statement).execute(&mut connection).await.ok()?;
            }
            connection.close().await.ok()
        })
    })
    .join();
    matches!(ran, Ok(Some(())))
}
