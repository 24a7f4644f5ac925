//! How the connection to PostgreSQL travels: whether a database URL lets the
//! traffic (password and key hashes, sealed signing keys) cross a network
//! without TLS that authenticates the server.
//!
//! sqlx is built with rustls (the ring provider, the webpki roots plus the CA
//! of `sslrootcert`). `sslmode=verify-full` encrypts and checks the server's
//! certificate and name; `verify-ca` checks the certificate but not the name
//! (and since the public webpki roots stay trusted, any publicly issued
//! certificate for any name passes); `require` encrypts without checking who
//! answers (sqlx ignores `sslrootcert` there, unlike libpq); `prefer` (the
//! default) uses TLS when the server offers it, unverified, and falls back to
//! plain text when it does not; `allow` and `disable` use none.

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::net::IpAddr;
use std::str::FromStr;

/// The warning to log at start when `url` names a PostgreSQL server on a
/// network host (neither loopback nor a Unix socket) with an `sslmode` other
/// than `verify-full`, the one mode that authenticates the server; `None`
/// otherwise, and for a URL that does not parse (opening it says why).
///
/// The host is judged by its spelling: `localhost`, `*.localhost`, 127.0.0.0/8
/// and `::1` are loopback; any other name counts as a network host, even one
/// that resolves to a loopback address. The warning names the host and the
/// mode, never the user or password.
pub fn unprotected_transport_warning(url: &str) -> Option<String> {
    let options = PgConnectOptions::from_str(url).ok()?;
    if options.get_socket().is_some() || is_loopback(options.get_host()) {
        return None;
    }
    let (mode, risk) = match options.get_ssl_mode() {
        PgSslMode::VerifyFull => return None,
        PgSslMode::VerifyCa => (
            "verify-ca",
            "the server's name is not checked, so any certificate a trusted authority issued \
             for any name is accepted",
        ),
        PgSslMode::Require => (
            "require",
            "the server's certificate is not checked, so whoever answers is trusted",
        ),
        PgSslMode::Prefer => (
            "prefer",
            "the traffic may cross the network in plain text or reach an impostor",
        ),
        PgSslMode::Allow => (
            "allow",
            "the traffic may cross the network in plain text or reach an impostor",
        ),
        PgSslMode::Disable => ("disable", "the traffic crosses the network in plain text"),
    };
    Some(format!(
        "the connection to PostgreSQL at {} does not authenticate the server (sslmode={mode}): \
         {risk}; use sslmode=verify-full&sslrootcert=/path/to/ca.pem in the database URL",
        options.get_host()
    ))
}

/// Whether `host` (as written in a database URL) is this machine by its spelling.
fn is_loopback(host: &str) -> bool {
    if host.starts_with('/') {
        return true;
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => address.is_loopback(),
        Ok(IpAddr::V6(address)) => {
            address.is_loopback() || address.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warns(url: &str) -> bool {
        unprotected_transport_warning(url).is_some()
    }

    #[test]
    fn loopback_and_sockets_never_warn() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://postgres@127.0.0.2/test?sslmode=disable",
            "postgres://postgres@localhost/test",
            "postgres://postgres@LOCALHOST./test",
            "postgres://postgres@db.localhost/test",
            "postgres://postgres@[::1]:5432/test",
            "postgres://postgres@[::ffff:127.0.0.1]/test",
            "postgres:///test?host=/var/run/postgresql",
            "postgres://%2Fvar%2Frun%2Fpostgresql/test",
        ] {
            assert!(!warns(url), "{url}");
        }
    }

    #[test]
    fn network_hosts_warn_unless_the_server_is_authenticated() {
        for mode in [
            "",
            "?sslmode=disable",
            "?sslmode=allow",
            "?sslmode=prefer",
            "?sslmode=require",
            "?sslmode=verify-ca",
        ] {
            for host in ["db.internal", "10.0.0.5", "[2001:db8::1]", "vm", "0.0.0.0"] {
                let url = format!("postgres://svc_user:secret@{host}:5432/assetpool{mode}");
                let warning = unprotected_transport_warning(&url)
                    .unwrap_or_else(|| panic!("no warning for {url}"));
                assert!(warning.contains("sslmode=verify-full"), "{warning}");
                assert!(warning.contains(host), "{warning}");
                assert!(!warning.contains("secret"), "{warning}");
                assert!(!warning.contains("svc_user"), "{warning}");
            }
        }
        let url = "postgres://app@db.internal/assetpool?sslmode=verify-full";
        assert!(!warns(url), "{url}");
    }

    #[test]
    fn the_warning_names_the_mode_in_use() {
        let warning =
            unprotected_transport_warning("postgres://db.internal/a?sslmode=disable").unwrap();
        assert!(warning.contains("(sslmode=disable)"), "{warning}");
    }

    #[test]
    fn a_url_that_does_not_parse_is_left_to_open() {
        assert!(!warns("postgres://db.internal/a?sslmode=sometimes"));
    }
}
