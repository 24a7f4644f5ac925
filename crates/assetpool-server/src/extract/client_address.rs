//! The client address of a request: the socket's peer, or the client a
//! trusted reverse proxy names in `X-Forwarded-For` or `Forwarded` (RFC 7239),
//! read right to left ([`TrustedProxies`]).

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The address of the client: the socket's peer or, when that peer is a
/// trusted proxy, the client its forwarding headers name ([`TrustedProxies`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddress
where
    TrustedProxies: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let trusted_proxies = TrustedProxies::from_ref(state);
        Ok(ClientAddress(client_address(
            &parts.headers,
            &parts.extensions,
            &trusted_proxies,
        )))
    }
}

/// The client of a request: the socket's peer, or the client a trusted
/// proxy's forwarding headers name.
pub fn client_address(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    trusted_proxies: &TrustedProxies,
) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    trusted_proxies.client_address(peer, headers)
}

/// Reverse proxies whose `X-Forwarded-For` and `Forwarded: for=` headers are
/// believed (`serve --trusted-proxy CIDR`).
///
/// From a peer outside these networks the headers are ignored and the socket
/// address is the client. From a trusted peer, the client is the right-most
/// address of the forwarding chain that is not itself a trusted proxy, so a
/// client cannot choose its address by sending the header itself. Malformed
/// chains (an entry that is not an IP address, `unknown`, an obfuscated
/// identifier) count as absent: the socket address is the client.
/// `X-Forwarded-For` is read when present, `Forwarded` otherwise.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[ipnet::IpNet]>);

impl TrustedProxies {
    /// Trusts the peers inside `networks`.
    pub fn new(networks: impl IntoIterator<Item = ipnet::IpNet>) -> Self {
        TrustedProxies(networks.into_iter().map(|net| net.trunc()).collect())
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[ipnet::IpNet] {
        &self.0
    }

    /// Whether `address` is inside a trusted network (IPv4-mapped IPv6
    /// addresses count as their IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let chain = if headers.contains_key(X_FORWARDED_FOR) {
            forwarded_for_chain(headers)
        } else if headers.contains_key(axum::http::header::FORWARDED) {
            forwarded_chain(headers)
        } else {
            return peer;
        };
        let Some(chain) = chain else {
            return peer;
        };
        chain
            .iter()
            .rev()
            .find(|address| !self.contains(**address))
            .or_else(|| chain.first())
            .copied()
            .unwrap_or(peer)
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Every `X-Forwarded-For` value, in order, as one list; `None` if any entry
/// is not an address.
fn forwarded_for_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        for entry in value.to_str().ok()?.split(',') {
            chain.push(parse_node(entry.trim())?);
        }
    }
    Some(chain)
}

/// The `for=` of every `Forwarded` element (RFC 7239), in order, as one list;
/// `None` if any element has no `for=` or one that is not an address.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all(axum::http::header::FORWARDED) {
        for element in split_outside_quotes(value.to_str().ok()?, ',')? {
            let mut node = None;
            for pair in split_outside_quotes(element, ';')? {
                let pair = pair.trim();
                if pair.is_empty() {
                    continue;
                }
                let (name, value) = pair.split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("for") {
                    continue;
                }
                if node.is_some() {
                    return None;
                }
                node = Some(parse_node(&unquote(value.trim())?)?);
            }
            chain.push(node?);
        }
    }
    Some(chain)
}

/// Splits at `separator` outside double-quoted strings; `None` when a quote
/// is left open.
fn split_outside_quotes(text: &str, separator: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && character == '\\' {
            escaped = true;
        } else if character == '"' {
            quoted = !quoted;
        } else if character == separator && !quoted {
            parts.push(&text[start..index]);
            start = index + separator.len_utf8();
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// A token, or a quoted string without its quotes and escapes.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut text = String::with_capacity(inner.len());
    let mut characters = inner.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => text.push(characters.next()?),
            '"' => return None,
            other => text.push(other),
        }
    }
    Some(text)
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let address = if let Ok(address) = text.parse::<IpAddr>() {
        address
    } else if let Ok(socket) = text.parse::<SocketAddr>() {
        socket.ip()
    } else {
        let inner = text.strip_prefix('[')?.strip_suffix(']')?;
        IpAddr::V6(inner.parse().ok()?)
    };
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|net| net.parse().unwrap()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5";

    fn client(pairs: &[(&'static str, &str)]) -> IpAddr {
        proxies(&["10.0.0.0/8", "fd00::/8"]).client_address(ip(PROXY), &headers(pairs))
    }

    #[test]
    fn without_trusted_proxies_the_socket_address_counts() {
        let none = TrustedProxies::default();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(none.client_address(ip(PROXY), &forwarded), ip(PROXY));
    }

    #[test]
    fn an_untrusted_peer_cannot_name_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for pair in [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ] {
            assert_eq!(
                trusted.client_address(ip("198.51.100.7"), &headers(&[pair])),
                ip("198.51.100.7")
            );
        }
    }

    #[test]
    fn a_trusted_peer_without_headers_is_the_client() {
        assert_eq!(client(&[]), ip(PROXY));
    }

    #[test]
    fn x_forwarded_for_ipv4_and_ipv6() {
        assert_eq!(
            client(&[("x-forwarded-for", "203.0.113.9")]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "2001:db8::7")]),
            ip("2001:db8::7")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "[2001:db8::7]:8443")]),
            ip("2001:db8::7")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "203.0.113.9:51000")]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_of_a_chain_is_the_client() {
        // A client-sent (spoofed) entry stands left of the address the proxy appended.
        assert_eq!(
            client(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]),
            ip("203.0.113.9")
        );
        // Trusted hops on the right are skipped.
        assert_eq!(
            client(&[(
                "x-forwarded-for",
                "1.2.3.4, 203.0.113.9, 10.1.1.1, 10.2.2.2"
            )]),
            ip("203.0.113.9")
        );
        // Several header lines form one chain, in order.
        assert_eq!(
            client(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "203.0.113.9, 10.1.1.1")
            ]),
            ip("203.0.113.9")
        );
        // Only trusted hops: the left-most one is the client.
        assert_eq!(
            client(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn spoof_attempts_do_not_move_the_client() {
        // Prepending trusted-looking or arbitrary addresses changes nothing.
        for chain in [
            "10.0.0.1, 203.0.113.9",
            "127.0.0.1, 203.0.113.9",
            "fd00::1, 203.0.113.9",
            "8.8.8.8, 10.0.0.1, 203.0.113.9",
        ] {
            assert_eq!(
                client(&[("x-forwarded-for", chain)]),
                ip("203.0.113.9"),
                "{chain}"
            );
        }
    }

    #[test]
    fn malformed_values_fall_back_to_the_socket_address() {
        for chain in [
            "",
            "not-an-address",
            "203.0.113.9,",
            "203.0.113.9, , 1.2.3.4",
            "203.0.113.9 1.2.3.4",
            "unknown",
            "[203.0.113.9]",
            "2001:db8::7]",
            "203.0.113.999",
        ] {
            assert_eq!(client(&[("x-forwarded-for", chain)]), ip(PROXY), "{chain}");
        }
        let mut binary = HeaderMap::new();
        binary.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client_address(ip(PROXY), &binary),
            ip(PROXY)
        );
    }

    #[test]
    fn forwarded_for_with_ports_quotes_and_ipv6() {
        assert_eq!(
            client(&[("forwarded", "for=203.0.113.9")]),
            ip("203.0.113.9")
        );
        assert_eq!(client(&[("forwarded", "for=\"[::1]:443\"")]), ip("::1"));
        assert_eq!(
            client(&[("forwarded", "For=\"[2001:db8:cafe::17]\";proto=https")]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            client(&[(
                "forwarded",
                "proto=https;for=\"203.0.113.9:47011\";by=10.0.0.5"
            )]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_chains_take_the_right_most_untrusted_hop() {
        assert_eq!(
            client(&[(
                "forwarded",
                "for=1.2.3.4, for=203.0.113.9;proto=https, for=10.1.1.1"
            )]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&[
                ("forwarded", "for=1.2.3.4"),
                ("forwarded", "for=\"[2001:db8::9]:80\"")
            ]),
            ip("2001:db8::9")
        );
        // A comma inside a quoted string does not split elements.
        assert_eq!(
            client(&[("forwarded", "for=203.0.113.9;ext=\"a,b\"")]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn malformed_forwarded_falls_back_to_the_socket_address() {
        for value in [
            "for=unknown",
            "for=_hidden",
            "for=\"203.0.113.9",
            "proto=https",
            "for=203.0.113.9;for=1.2.3.4",
            "for=203.0.113.9, proto=https",
            "for",
            "for=\"[::1]:443",
        ] {
            assert_eq!(client(&[("forwarded", value)]), ip(PROXY), "{value}");
        }
    }

    #[test]
    fn x_forwarded_for_wins_over_forwarded() {
        assert_eq!(
            client(&[
                ("forwarded", "for=1.2.3.4"),
                ("x-forwarded-for", "203.0.113.9")
            ]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_count_as_ipv4() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, ::ffff:10.1.1.1")]);
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.5"), &forwarded),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_address(ip("::ffff:198.51.100.7"), &forwarded),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ipv6_proxies() {
        let trusted = proxies(&["2001:db8:1::/48"]);
        let forwarded = headers(&[("x-forwarded-for", "2001:db8:2::9, 2001:db8:1::2")]);
        assert_eq!(
            trusted.client_address(ip("2001:db8:1::1"), &forwarded),
            ip("2001:db8:2::9")
        );
    }
}
