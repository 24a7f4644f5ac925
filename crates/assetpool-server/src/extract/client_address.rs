//! The client address of a request: the socket's peer, or the client a
//! trusted reverse proxy names in its forwarding header (`X-Forwarded-For`,
//! or `Forwarded` of RFC 7239, whichever `--forwarded-header` says), read
//! right to left ([`TrustedProxies`]).

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The address of the client: the socket's peer or, when that peer is a
/// trusted proxy, the client its forwarding header names ([`TrustedProxies`]).
///
/// The observe layer ([`crate::middleware::ObserveLayer`]) resolves it once
/// per request, refuses a request whose trusted proxy sent a malformed chain
/// (400 `invalid_request`), and puts the address on the request; this
/// extractor reads it from there.
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

/// The client of a request: the [`ClientAddress`] the observe layer put on
/// it; else (a router without that layer) the socket's peer, or the client
/// a trusted proxy's forwarding header names (the peer when that header is
/// malformed: such a request never reaches a handler behind the layer).
pub fn client_address(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    trusted_proxies: &TrustedProxies,
) -> IpAddr {
    if let Some(ClientAddress(address)) = extensions.get::<ClientAddress>() {
        return *address;
    }
    let peer = peer_address(extensions);
    trusted_proxies
        .client_address(peer, headers)
        .unwrap_or(peer)
}

/// The socket's peer of a request (unspecified when the listener did not
/// say, as in tests that call a router directly).
pub fn peer_address(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// The forwarding header a trusted proxy names the client in
/// (`--forwarded-header`); the other one is never read, so a client cannot
/// name itself through the header its proxy does not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, HAProxy `forwardfor`,
    /// Traefik, Envoy, cloud load balancers); the default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// `x-forwarded-for` or `forwarded`, as the option takes them.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err("expected x-forwarded-for or forwarded".to_owned()),
        }
    }

    /// The header's name.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// A trusted proxy's forwarding header that does not name a client: an
/// entry reached from the right that is not an address (`unknown`, an
/// obfuscated identifier, garbage), or a `Forwarded` line whose elements
/// cannot be told apart. Refused (400 `invalid_request`) rather than read as
/// the proxy's own address, which would make every client one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedForwarding;

/// Reverse proxies whose forwarding header is believed (`serve
/// --trusted-proxy CIDR`), and which header that is (`--forwarded-header`).
///
/// From a peer outside these networks no forwarding header is read and the
/// socket address is the client. From a trusted peer, the configured header
/// is read right to left, all its lines in order: trusted hops are skipped
/// and the first address that is not a trusted proxy is the client, so a
/// client cannot choose its address by sending the header itself, and what
/// stands left of that address (whatever the client sent) is never read. An
/// entry reached on the way that is not an address is
/// [`MalformedForwarding`]. No header: the peer is the client (the proxy's
/// own requests); every entry trusted: the left-most one.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Arc<[ipnet::IpNet]>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Trusts the peers inside `networks`, reading `header` from them.
    pub fn new(networks: impl IntoIterator<Item = ipnet::IpNet>, header: ForwardedHeader) -> Self {
        TrustedProxies {
            networks: networks.into_iter().map(|net| net.trunc()).collect(),
            header,
        }
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[ipnet::IpNet] {
        &self.networks
    }

    /// The header read from trusted peers.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether `address` is inside a trusted network (IPv4-mapped IPv6
    /// addresses count as their IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub fn client_address(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<IpAddr, MalformedForwarding> {
        let peer = peer.to_canonical();
        if self.networks.is_empty() || !self.contains(peer) {
            return Ok(peer);
        }
        let lines: Vec<Cow<'_, str>> = headers
            .get_all(self.header.name())
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .collect();
        if lines.is_empty() {
            return Ok(peer);
        }
        let mut left_most_trusted = None;
        for line in lines.iter().rev() {
            let entries = match self.header {
                ForwardedHeader::XForwardedFor => line.split(',').collect(),
                ForwardedHeader::Forwarded => {
                    split_outside_quotes(line, ',').ok_or(MalformedForwarding)?
                }
            };
            for entry in entries.into_iter().rev() {
                let address = match self.header {
                    ForwardedHeader::XForwardedFor => parse_node(entry.trim()),
                    ForwardedHeader::Forwarded => forwarded_for(entry),
                }
                .ok_or(MalformedForwarding)?;
                if !self.contains(address) {
                    return Ok(address);
                }
                left_most_trusted = Some(address);
            }
        }
        Ok(left_most_trusted.unwrap_or(peer))
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The `for=` of one `Forwarded` element (RFC 7239); `None` when it has no
/// `for=`, two of them, or one that is not an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
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
    node
}

/// Splits at `separator` outside double-quoted strings; `None` when a quote
/// is left open.
pub(crate) fn split_outside_quotes(text: &str, separator: char) -> Option<Vec<&str>> {
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
pub(crate) fn unquote(value: &str) -> Option<String> {
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
        proxies_reading(networks, ForwardedHeader::XForwardedFor)
    }

    fn proxies_reading(networks: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|net| net.parse().unwrap()), header)
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
        proxies(&["10.0.0.0/8", "fd00::/8"])
            .client_address(ip(PROXY), &headers(pairs))
            .unwrap()
    }

    fn forwarded_client(pairs: &[(&'static str, &str)]) -> Result<IpAddr, MalformedForwarding> {
        proxies_reading(&["10.0.0.0/8", "fd00::/8"], ForwardedHeader::Forwarded)
            .client_address(ip(PROXY), &headers(pairs))
    }

    fn malformed(pairs: &[(&'static str, &str)]) -> bool {
        proxies(&["10.0.0.0/8", "fd00::/8"]).client_address(ip(PROXY), &headers(pairs))
            == Err(MalformedForwarding)
    }

    #[test]
    fn without_trusted_proxies_the_socket_address_counts() {
        let none = TrustedProxies::default();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(none.client_address(ip(PROXY), &forwarded), Ok(ip(PROXY)));
    }

    #[test]
    fn an_untrusted_peer_cannot_name_the_client() {
        for trusted in [
            proxies(&["10.0.0.0/8"]),
            proxies_reading(&["10.0.0.0/8"], ForwardedHeader::Forwarded),
        ] {
            for pair in [
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("x-forwarded-for", "garbage"),
                ("forwarded", "for=\"garbage"),
            ] {
                assert_eq!(
                    trusted.client_address(ip("198.51.100.7"), &headers(&[pair])),
                    Ok(ip("198.51.100.7"))
                );
            }
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
    fn malformed_entries_reached_from_the_right_are_refused() {
        for chain in [
            "",
            "not-an-address",
            "203.0.113.9,",
            "203.0.113.9 1.2.3.4",
            "unknown",
            "[203.0.113.9]",
            "2001:db8::7]",
            "203.0.113.999",
            // A malformed hop between trusted ones and the client.
            "203.0.113.9, garbage, 10.1.1.1",
        ] {
            assert!(malformed(&[("x-forwarded-for", chain)]), "{chain}");
        }
        let mut binary = HeaderMap::new();
        binary.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client_address(ip(PROXY), &binary),
            Err(MalformedForwarding)
        );
    }

    #[test]
    fn what_a_client_sent_left_of_its_address_is_never_read() {
        // nginx's $proxy_add_x_forwarded_for appends the real address to
        // whatever the client sent: garbage there changes nothing.
        for chain in [
            "garbage, 203.0.113.9",
            "unknown, 203.0.113.9",
            "203.0.113.9, , 1.2.3.4, 203.0.113.9",
            "\"quoted\", 203.0.113.9, 10.1.1.1",
        ] {
            assert_eq!(
                client(&[("x-forwarded-for", chain)]),
                ip("203.0.113.9"),
                "{chain}"
            );
        }
        let mut binary = HeaderMap::new();
        binary.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client_address(ip(PROXY), &binary),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn forwarded_for_with_ports_quotes_and_ipv6() {
        assert_eq!(
            forwarded_client(&[("forwarded", "for=203.0.113.9")]),
            Ok(ip("203.0.113.9"))
        );
        assert_eq!(
            forwarded_client(&[("forwarded", "for=\"[::1]:443\"")]),
            Ok(ip("::1"))
        );
        assert_eq!(
            forwarded_client(&[("forwarded", "For=\"[2001:db8:cafe::17]\";proto=https")]),
            Ok(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            forwarded_client(&[(
                "forwarded",
                "proto=https;for=\"203.0.113.9:47011\";by=10.0.0.5"
            )]),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn forwarded_chains_take_the_right_most_untrusted_hop() {
        assert_eq!(
            forwarded_client(&[(
                "forwarded",
                "for=1.2.3.4, for=203.0.113.9;proto=https, for=10.1.1.1"
            )]),
            Ok(ip("203.0.113.9"))
        );
        assert_eq!(
            forwarded_client(&[
                ("forwarded", "for=1.2.3.4"),
                ("forwarded", "for=\"[2001:db8::9]:80\"")
            ]),
            Ok(ip("2001:db8::9"))
        );
        // A comma inside a quoted string does not split elements.
        assert_eq!(
            forwarded_client(&[("forwarded", "for=203.0.113.9;ext=\"a,b\"")]),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn malformed_forwarded_elements_are_refused() {
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
            assert_eq!(
                forwarded_client(&[("forwarded", value)]),
                Err(MalformedForwarding),
                "{value}"
            );
        }
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = [
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(&both), ip("203.0.113.9"));
        assert_eq!(forwarded_client(&both), Ok(ip("1.2.3.4")));
        // The other header alone: the proxy itself is the client.
        assert_eq!(client(&[("forwarded", "for=1.2.3.4")]), ip(PROXY));
        assert_eq!(
            forwarded_client(&[("x-forwarded-for", "1.2.3.4")]),
            Ok(ip(PROXY))
        );
        // Garbage in the header that is not read changes nothing.
        assert_eq!(client(&[("forwarded", "for=\"garbage")]), ip(PROXY));
    }

    #[test]
    fn forwarded_elements_left_of_the_client_are_never_read() {
        assert_eq!(
            forwarded_client(&[
                ("forwarded", "for=unknown;garbage"),
                ("forwarded", "for=203.0.113.9")
            ]),
            Ok(ip("203.0.113.9"))
        );
        assert_eq!(
            forwarded_client(&[("forwarded", "for=_hidden, for=203.0.113.9, for=10.1.1.1")]),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_count_as_ipv4() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, ::ffff:10.1.1.1")]);
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.5"), &forwarded),
            Ok(ip("203.0.113.9"))
        );
        assert_eq!(
            trusted.client_address(ip("::ffff:198.51.100.7"), &forwarded),
            Ok(ip("198.51.100.7"))
        );
    }

    #[test]
    fn ipv6_proxies() {
        let trusted = proxies(&["2001:db8:1::/48"]);
        let forwarded = headers(&[("x-forwarded-for", "2001:db8:2::9, 2001:db8:1::2")]);
        assert_eq!(
            trusted.client_address(ip("2001:db8:1::1"), &forwarded),
            Ok(ip("2001:db8:2::9"))
        );
    }
}
