//! Whether a request came over HTTPS: over the server's own TLS listener,
//! or from a `--trusted-proxy` peer that says its client used `https`
//! (`X-Forwarded-Proto` with `--forwarded-header x-forwarded-for`, the
//! `proto=` of the last `Forwarded` element with `forwarded`). What any
//! other peer says is never read. The web console marks its cookies
//! `Secure` from this.

use super::client_address::{peer_address, split_outside_quotes, unquote, ForwardedHeader};
use super::TrustedProxies;
use crate::listener::Tls;
use axum::http::{Extensions, HeaderMap};

const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Whether the request came over HTTPS (see the module's documentation).
pub fn over_https(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted_proxies: &TrustedProxies,
) -> bool {
    if extensions.get::<Tls>().is_some() {
        return true;
    }
    if !trusted_proxies.contains(peer_address(extensions)) {
        return false;
    }
    let proto = match trusted_proxies.header() {
        ForwardedHeader::XForwardedFor => last_value(headers, X_FORWARDED_PROTO)
            .and_then(|line| line.rsplit(',').next().map(|proto| proto.trim().to_owned())),
        ForwardedHeader::Forwarded => last_value(headers, ForwardedHeader::Forwarded.name())
            .and_then(|line| last_proto(&line)),
    };
    proto.is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The last line of a header, if any.
fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// The `proto=` of the last element of a `Forwarded` line (the one the
/// trusted proxy added).
fn last_proto(line: &str) -> Option<String> {
    let elements = split_outside_quotes(line, ',')?;
    let last = elements.last()?;
    split_outside_quotes(last, ';')?
        .into_iter()
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proto"))
        .and_then(|(_, value)| unquote(value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;

    fn from_proxy(header: ForwardedHeader, pairs: &[(&'static str, &'static str)]) -> bool {
        let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()], header);
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo("10.0.0.5:4000".parse::<SocketAddr>().unwrap()));
        over_https(&headers, &extensions, &proxies)
    }

    #[test]
    fn only_tls_or_a_trusted_proxy_says_https() {
        let x = ForwardedHeader::XForwardedFor;
        assert!(from_proxy(x, &[("x-forwarded-proto", "https")]));
        assert!(from_proxy(x, &[("x-forwarded-proto", "http, HTTPS")]));
        assert!(!from_proxy(x, &[("x-forwarded-proto", "http")]));
        assert!(!from_proxy(x, &[]));
        let f = ForwardedHeader::Forwarded;
        assert!(from_proxy(f, &[("forwarded", "for=1.2.3.4;proto=https")]));
        assert!(!from_proxy(f, &[("forwarded", "proto=https, for=1.2.3.4")]));
        assert!(!from_proxy(f, &[("x-forwarded-proto", "https")]));

        let untrusted = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()], x);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo("192.0.2.1:4000".parse::<SocketAddr>().unwrap()));
        assert!(!over_https(&headers, &extensions, &untrusted));
        extensions.insert(Tls);
        assert!(over_https(&HeaderMap::new(), &extensions, &untrusted));
    }
}
