//! PostgreSQL over TLS: the real binary with `sslmode=verify-full` and the
//! server's CA (migrations, a key, a running server whose every connection is
//! TLS per `pg_stat_ssl`), a wrong CA refused in one line, `sslmode=require`,
//! and the start-up warning of `serve` for a network host without verified TLS.
//!
//! The test server's certificate comes from `.ci/postgres-tls` (run by
//! `.ci/run`): a throwaway CA and a certificate for 127.0.0.1 and localhost,
//! with TLS switched on for the local cluster and plain connections still
//! allowed. The CA file is `ASSETPOOL_TEST_POSTGRES_CA`; without it, the
//! `ca.crt` that script keeps beside the server's certificate is read through
//! SQL (superuser). Without either, the tests are skipped with a line on
//! stderr, or fail when `ASSETPOOL_REQUIRE_POSTGRES=1`.

use crate::helpers::{assert_clean_failure, client, Db, Server};
use assetpool_store_tests::postgres::base_url;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// The environment variable naming the test server's CA file.
const CA_ENV: &str = "ASSETPOOL_TEST_POSTGRES_CA";
/// What `serve` says when the database traffic may cross a network unverified.
const WARNING: &str = "sslmode=verify-full";

/// A CA certificate (PEM) that signed nothing the test server presents.
fn another_ca() -> String {
    let key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.distinguished_name
        .push(DnType::CommonName, "another test CA");
    ca.self_signed(&key).unwrap().pem()
}

fn admin_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&base_url()).unwrap()
}

/// Whether a `verify-full` connection with `ca` succeeds now.
async fn verifies(ca: &str) -> bool {
    let options = admin_options()
        .ssl_mode(PgSslMode::VerifyFull)
        .ssl_root_cert_from_pem(ca.as_bytes().to_vec());
    match options.connect().await {
        Ok(connection) => {
            let _ = connection.close().await;
            true
        }
        Err(_) => false,
    }
}

/// The CA of the test server's certificate: `ASSETPOOL_TEST_POSTGRES_CA`, or
/// the `ca.crt` beside the server's certificate if it verifies the server.
async fn find_server_ca() -> Option<String> {
    if let Ok(path) = std::env::var(CA_ENV) {
        return Some(
            std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("{CA_ENV}={path} cannot be read: {error}")),
        );
    }
    let mut connection = admin_options().connect().await.ok()?;
    let kept: Option<String> = sqlx::query_scalar(
        "SELECT pg_read_file(regexp_replace(current_setting('ssl_cert_file'), '[^/]*$', '') \
         || 'ca.crt', 0, 1000000, true)",
    )
    .fetch_one(&mut connection)
    .await
    .ok()
    .flatten();
    let _ = connection.close().await;
    let ca = kept?;
    verifies(&ca).await.then_some(ca)
}

/// A fresh schema and the CA of the test server's certificate, or `None`
/// (after saying so) when there is no such server and none is required.
async fn tls_database(test: &str) -> Option<(Db, String)> {
    let db = Db::postgres(test).await?;
    match find_server_ca().await {
        Some(ca) => Some((db, ca)),
        None => {
            let reason = format!(
                "the test PostgreSQL serves no TLS certificate of a known CA: run .ci/postgres-tls \
                 (as .ci/run does) or set {CA_ENV}"
            );
            let required =
                std::env::var("ASSETPOOL_REQUIRE_POSTGRES").is_ok_and(|value| value == "1");
            assert!(!required, "{reason}");
            eprintln!("skipped {test}: {reason}");
            None
        }
    }
}

/// `pem` written to `name` in the database's directory.
fn write(db: &Db, name: &str, pem: &str) -> PathBuf {
    let path = db.path().join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// How many connections named `application` the test server has, and
/// whether every one of them is TLS.
async fn tls_connections(application: &str) -> (i64, bool) {
    let mut connection = admin_options().connect().await.unwrap();
    let row: (i64, Option<bool>) = sqlx::query_as(
        "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.application_name = $1",
    )
    .bind(application)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    let _ = connection.close().await;
    (row.0, row.1.unwrap_or(false))
}

/// Starts `serve` on `db` and checks that its database connections are all TLS.
async fn assert_serves_over_tls(db: &Db, application: &str) {
    let server = Server::start(db, &[]);
    let ready = client().get(server.at("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (connections, all_tls) = tls_connections(application).await;
    assert!(connections >= 1, "no connection named {application}");
    assert!(all_tls, "a connection of {application} is not TLS");
    assert!(
        !server.stderr().contains(WARNING),
        "warned: {}",
        server.stderr()
    );
}

fn application_name(test: &str) -> String {
    format!("{test}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_connects_over_tls() {
    let Some((mut db, ca)) = tls_database("verify-full").await else {
        return;
    };
    let ca = write(&db, "ca.pem", &ca);
    let application = application_name("tls-verify-full");
    db.url = format!(
        "{}&sslmode=verify-full&sslrootcert={}&application_name={application}",
        db.url,
        ca.display()
    );
    db.ok(&["migrate"]);
    let key = db.create_key("over tls", "prod");
    assert!(key.key.starts_with("apk_prod_"));
    assert_serves_over_tls(&db, &application).await;
}

#[tokio::test]
async fn verify_full_with_another_ca_fails_in_one_line() {
    let Some((mut db, _)) = tls_database("verify-full, wrong CA").await else {
        return;
    };
    let other_ca = write(&db, "other-ca.pem", &another_ca());
    let base = db.url.clone();
    db.url = format!(
        "{base}&sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    );
    let line = assert_clean_failure(&db.run(&["migrate"]));
    assert!(line.contains("certificate"), "{line}");
    assert!(line.contains("PostgreSQL"), "{line}");

    // A CA file that does not exist: one line too.
    db.url = format!("{base}&sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    let line = assert_clean_failure(&db.run(&["keys", "list"]));
    assert!(line.contains("sslrootcert"), "{line}");
}

#[tokio::test]
async fn require_connects_over_tls() {
    let Some((mut db, _)) = tls_database("sslmode=require").await else {
        return;
    };
    let application = application_name("tls-require");
    db.url = format!("{}&sslmode=require&application_name={application}", db.url);
    db.ok(&["migrate"]);
    assert_serves_over_tls(&db, &application).await;
}

/// A name of this machine, other than `localhost`, that resolves to the test
/// server's 127.0.0.1: its host name, where `/etc/hosts` maps it there.
fn non_loopback_name_of_the_test_server() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok() {
        return None;
    }
    let port = admin_options().get_port();
    let resolves_to_the_server = (name.as_str(), port)
        .to_socket_addrs()
        .ok()?
        .any(|address| address.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST));
    resolves_to_the_server.then_some(name)
}

#[tokio::test]
async fn serve_warns_once_when_a_network_host_is_used_without_verified_tls() {
    let Some((mut db, _)) = tls_database("the plaintext warning").await else {
        return;
    };
    // Loopback: nothing to warn about.
    let server = Server::start(&db, &[]);
    assert!(!server.stderr().contains(WARNING), "{}", server.stderr());
    drop(server);
    if admin_options().get_host() != "127.0.0.1" {
        eprintln!("skipped the plaintext warning test: the test server is not on 127.0.0.1");
        return;
    }
    let Some(name) = non_loopback_name_of_the_test_server() else {
        eprintln!(
            "skipped the plaintext warning test: this machine's host name does not resolve to 127.0.0.1"
        );
        return;
    };
    // The same server through a name that is not loopback by its spelling,
    // as a database on another machine would be named.
    db.url = db.url.replacen("@127.0.0.1:", &format!("@{name}:"), 1);
    assert!(db.url.contains(&name), "{}", db.url);
    let server = Server::start(&db, &[]);
    let log = server.stderr();
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains(WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains(&name), "{}", warnings[0]);
    drop(server);

    // TLS that does not authenticate the server (sqlx checks no certificate
    // under `require`) is warned about too, naming the mode.
    db.url = format!("{}&sslmode=require", db.url);
    let server = Server::start(&db, &[]);
    let log = server.stderr();
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains(WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("(sslmode=require)"), "{}", warnings[0]);
}
