//! How the connection to PostgreSQL travels: whether a database URL lets the
//! traffic (password and key hashes, sealed signing keys) cross a network
//! without TLS that authenticates the server.
//!
//! sqlx is built with rustls (the ring provider, the webpki roots plus the CA
//! of `sslrootcert`). `sslmode=verify-full` encrypts and checks the server's
//! certificate and name; `require` encrypts without checking who answers;
//! `prefer` (the default) uses TLS when the server offers it, unverified, and
//! falls back to plain text when it does not; `allow` and `disable` use none.

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::net::IpAddr;
use std::str::FromStr;

/// The warning to log at start when `url` names a PostgreSQL server on a
/// network host (neither loopback nor a Unix socket) with an `sslmode` that
/// does not require TLS (absent, `disable`, `allow` or `prefer`); `None`
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
    let mode = match options.get_ssl_mode() {
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => return None,
        PgSslMode::Prefer => "prefer",
        PgSslMode::Allow => "allow",
        PgSslMode::Disable => "disable",
    };
    Some(format!(
        "the connection to PostgreSQL at {} does not require TLS (sslmode={mode}): the database \
         traffic may cross the network in plain text or reach an impostor; add \
         sslmode=verify-full&sslrootcert=/path/to/ca.pem to the database URL",
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
    fn network_hosts_warn_unless_tls_is_required() {
        for mode in ["", "?sslmode=disable", "?sslmode=allow", "?sslmode=prefer"] {
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
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://app@db.internal/assetpool?sslmode={mode}");
            assert!(!warns(&url), "{url}");
        }
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
