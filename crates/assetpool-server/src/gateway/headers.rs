//! Header rules of the reverse proxy: hop-by-hop headers (RFC 9110 section
//! 7.6.1) and upgrades, credentials, identity headers, and the headers that
//! describe where a request came from (`Forwarded`, `X-Forwarded-*`,
//! `X-Real-IP`, ...), and the web console's cookies, which stay between
//! the browser and assetpool.
//!
//! Header names are compared the way many upstream stacks read them: CGI,
//! WSGI, Rack, PHP and their kin upper-case a name and turn every character
//! that is neither a letter nor a digit into `_`, so `X-Assetpool-User-Id`,
//! `X_Assetpool_User_Id` and `x.assetpool.user.id` all become
//! `HTTP_X_ASSETPOOL_USER_ID`. A client header is therefore judged by its
//! [`normalised_name`], never by its exact spelling alone.

use super::IDENTITY_PREFIX;
use crate::console::session::is_console_cookie_name;
use assetpool_wire::{API_KEY_HEADER, API_TOKEN_HEADER};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The credential headers (docs/CONTRACT.md section 3), never passed to the upstream.
const CREDENTIAL_HEADERS: [&str; 3] = [API_KEY_HEADER, API_TOKEN_HEADER, "authorization"];

/// Headers that tell an upstream where a request came from: the client's
/// address, the scheme, host, port and path prefix it used. Frameworks
/// believe them when told they sit behind a proxy (Rails and Rack:
/// `X-Forwarded-Ssl`, `X-Forwarded-Scheme`; Werkzeug's `ProxyFix`:
/// `X-Forwarded-Port`, `X-Forwarded-Prefix`; Spring and Symfony: RFC 7239
/// `Forwarded`; Go's chi: `True-Client-IP`, `X-Real-IP`; ...), so only this
/// proxy and the trusted proxies before it may set them ([`set_forwarded`]).
pub const ORIGIN_HEADERS: [&str; 17] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-real-ip",
    "x-url-scheme",
    "front-end-https",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
];

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The only upgrade the proxy passes on (RFC 6455).
const WEBSOCKET: &str = "websocket";

/// Hop-by-hop headers that never cross the proxy (besides those named by
/// `Connection`). Without `Trailer`, hyper sends no trailer fields after a
/// chunked body either (it writes only those the message's `Trailer`
/// announces), so removing it also keeps a client's trailer fields, which
/// could carry `x-assetpool-*` or credential names, from the upstream; the
/// proxy drops request trailers explicitly as well
/// ([`super::proxy`]'s `WithoutTrailers`).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// Keeps the web console's cookies and the upstream's apart on their shared
/// origin: the client's `Cookie` headers lose the console's cookies (should
/// a browser send them beyond `/console`), and the upstream's
/// `Set-Cookie` lines naming one of them (any case or prefix) are dropped,
/// so an upstream can neither read a console session nor plant one.
/// Names are judged by [`is_console_cookie_name`].
pub fn remove_console_cookies(headers: &mut HeaderMap) {
    if !headers.get_all(header::COOKIE).iter().any(|line| {
        line.as_bytes()
            .split(|byte| *byte == b';')
            .any(is_console_pair)
    }) {
        return;
    }
    let lines: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    headers.remove(header::COOKIE);
    for line in lines {
        let kept: Vec<&[u8]> = line
            .as_bytes()
            .split(|byte| *byte == b';')
            .filter(|pair| !is_console_pair(pair) && !pair.trim_ascii().is_empty())
            .map(<[u8]>::trim_ascii)
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            headers.append(header::COOKIE, value);
        }
    }
}

/// See [`remove_console_cookies`]: the upstream's `Set-Cookie` lines that
/// would set one of the console's cookies go.
pub fn remove_console_set_cookies(headers: &mut HeaderMap) {
    if !headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|line| is_console_pair(line.as_bytes()))
    {
        return;
    }
    let lines: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for line in lines {
        if !is_console_pair(line.as_bytes()) {
            headers.append(header::SET_COOKIE, line);
        }
    }
}

/// Whether a `name=value` pair (of `Cookie`, or the start of a
/// `Set-Cookie` line) names one of the console's cookies. A pair with an
/// empty name (`=assetpool_console=...`) counts by its value's own `name=`:
/// browsers keep such a cookie nameless and send it back as that pair.
fn is_console_pair(pair: &[u8]) -> bool {
    let pair = pair.split(|byte| *byte == b';').next().unwrap_or_default();
    let Some(equals) = pair.iter().position(|byte| *byte == b'=') else {
        return false;
    };
    let name = &pair[..equals];
    if name.iter().all(u8::is_ascii_whitespace) {
        return is_console_pair(&pair[equals + 1..]);
    }
    std::str::from_utf8(name).is_ok_and(is_console_cookie_name)
}

/// Removes the hop-by-hop headers: `Connection` and every header it names,
/// and the fixed list above.
///
/// One pass over the names present (a handful) rather than a look-up of
/// every name of the list.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut doomed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    doomed.extend(
        headers
            .keys()
            .filter(|name| HOP_BY_HOP.contains(&name.as_str()))
            .cloned(),
    );
    remove_all(headers, doomed);
}

/// Removes every header named in `names` (present or not, named twice or not).
fn remove_all(headers: &mut HeaderMap, names: Vec<HeaderName>) {
    for name in names {
        headers.remove(name);
    }
}

/// Whether the headers, of a request or a 101 response, name exactly the
/// WebSocket upgrade: `Connection` has the `upgrade` token (RFC 9110 section
/// 7.8) and there is one `Upgrade` header whose value is `websocket` (in any
/// case). A list of protocols, or any other protocol, is not a WebSocket
/// upgrade.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    let only_websocket = match (upgrades.next(), upgrades.next()) {
        (Some(protocol), None) => protocol
            .to_str()
            .is_ok_and(|protocol| protocol.trim().eq_ignore_ascii_case(WEBSOCKET)),
        _ => false,
    };
    connection_upgrade && only_websocket
}

/// Puts back `Connection: upgrade` and `Upgrade: websocket` after the
/// hop-by-hop headers were removed, for a WebSocket upgrade passed through.
pub fn keep_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(WEBSOCKET));
}

/// A header name as CGI-style readers see it: lower-cased, with every
/// character other than a letter or a digit (`_`, `.`, `~`, ...) read as `-`.
pub fn normalised_name(name: &str) -> Cow<'_, str> {
    let canonical = |byte: u8| byte == b'-' || byte.is_ascii_lowercase() || byte.is_ascii_digit();
    if name.bytes().all(canonical) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .map(|character| {
                if character.is_ascii_alphanumeric() {
                    character.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect(),
    )
}

/// Whether a client may not send `name` to the upstream in any spelling: a
/// credential header, or an identity header (`x-assetpool-*`).
pub fn is_reserved(name: &str) -> bool {
    is_reserved_normalised(&normalised_name(name))
}

/// [`is_reserved`] of a name already normalised.
fn is_reserved_normalised(name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&name) || name.starts_with(IDENTITY_PREFIX)
}

/// Whether `name` is another spelling of an origin header (`x_forwarded_for`,
/// `X_Real_IP`): never this proxy's or a trusted proxy's own, which use the
/// canonical names ([`set_forwarded`] handles those). `normalised` is
/// [`normalised_name`] of `name`.
fn is_origin_lookalike(name: &str, normalised: &str) -> bool {
    normalised != name && ORIGIN_HEADERS.contains(&normalised)
}

/// Removes the credentials and every client-sent identity header, in every
/// spelling ([`is_reserved`]), and other spellings of the origin headers.
pub fn remove_credentials_and_identity(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            let normalised = normalised_name(name);
            is_reserved_normalised(&normalised) || is_origin_lookalike(name, &normalised)
        })
        .cloned()
        .collect();
    remove_all(headers, spoofed);
}

/// How the request reached this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The socket peer.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy (`--trusted-proxy`).
    pub peer_trusted: bool,
    /// Whether the connection is TLS.
    pub https: bool,
}

impl Hop {
    /// `https` or `http`.
    fn scheme(self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }
}

/// Sets the origin headers for the upstream.
///
/// From a peer that is not a trusted proxy, every origin header
/// ([`ORIGIN_HEADERS`]) is a claim of the client's own and is removed, but
/// for `X-Forwarded-For`. From a trusted proxy, they are that proxy's and
/// are kept, and this hop is appended to `Forwarded` when the proxy sent one
/// (RFC 7239 section 4; none is started here: an upstream that prefers
/// `Forwarded`, as Spring does, would then see this proxy's peer as the
/// client and ignore the proxy's `X-Forwarded-For`).
///
/// Then the peer's address is appended to `X-Forwarded-For` (as every proxy
/// does: the upstream trusts only the entries its own proxies added), and
/// `X-Forwarded-Proto` and `X-Forwarded-Host` are set from this connection
/// unless a trusted proxy set them.
pub fn set_forwarded(headers: &mut HeaderMap, hop: Hop) {
    if hop.peer_trusted {
        append_forwarded_element(headers, hop);
    } else {
        let claimed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| *name != FORWARDED_FOR && ORIGIN_HEADERS.contains(&name.as_str()))
            .cloned()
            .collect();
        remove_all(headers, claimed);
    }
    let mut chain = String::with_capacity(64);
    for existing in headers
        .get_all(&FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
    {
        chain.push_str(existing);
        chain.push_str(", ");
    }
    push_address(&mut chain, hop.peer);
    // `insert` replaces every line the header had.
    if let Ok(value) = HeaderValue::try_from(chain) {
        headers.insert(FORWARDED_FOR, value);
    } else {
        headers.remove(&FORWARDED_FOR);
    }
    if !headers.contains_key(&FORWARDED_PROTO) {
        headers.insert(FORWARDED_PROTO, HeaderValue::from_static(hop.scheme()));
    }
    if !headers.contains_key(&FORWARDED_HOST) {
        if let Some(host) = headers.get(header::HOST).cloned() {
            headers.insert(FORWARDED_HOST, host);
        }
    }
}

/// Appends `address` as `Display` writes it; an IPv4 address without the
/// formatting machinery (it is written for every forwarded request).
fn push_address(text: &mut String, address: IpAddr) {
    match address {
        IpAddr::V4(address) => {
            for (index, octet) in address.octets().into_iter().enumerate() {
                if index > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
        }
        // Writing to a String cannot fail.
        IpAddr::V6(address) => {
            let _ = write!(text, "{address}");
        }
    }
}

/// Appends this hop (`for=PEER;proto=SCHEME;host="HOST"`) to a `Forwarded`
/// header the trusted proxy before sent; its several lines become one list.
fn append_forwarded_element(headers: &mut HeaderMap, hop: Hop) {
    let received: Vec<&str> = headers
        .get_all(&FORWARDED)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if received.is_empty() {
        return;
    }
    let node = match hop.peer {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => format!("\"[{address}]\""),
    };
    let mut element = format!("for={node};proto={}", hop.scheme());
    if let Some(host) = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    {
        let quoted = host.replace('\\', "\\\\").replace('"', "\\\"");
        element.push_str(&format!(";host=\"{quoted}\""));
    }
    let list = format!("{}, {element}", received.join(", "));
    if let Ok(value) = HeaderValue::from_str(&list) {
        headers.insert(FORWARDED, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consoles_cookies_neither_reach_nor_come_from_the_upstream() {
        let mut request = HeaderMap::new();
        request.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-assetpool_console=apc_x; b=2"),
        );
        request.append(
            header::COOKIE,
            HeaderValue::from_static("assetpool_console_sign_in=t"),
        );
        request.append(header::COOKIE, HeaderValue::from_static("c=3"));
        remove_console_cookies(&mut request);
        let lines: Vec<_> = request.get_all(header::COOKIE).iter().collect();
        assert_eq!(lines, ["a=1; b=2", "c=3"]);

        let mut response = HeaderMap::new();
        for line in [
            "session=s; Path=/",
            "__Host-assetpool_console=apc_planted; Path=/; Secure",
            " ASSETPOOL_CONSOLE =x",
            "__secure-assetpool_console_sign_in=y; Secure",
            "assetpool_console_other=z",
            "assetpool_console",
            // Nameless: browsers send it back as `assetpool_console=apc_...`.
            "=assetpool_console=apc_planted; Path=/console",
            " =__Host-assetpool_console=apc_planted",
        ] {
            response.append(header::SET_COOKIE, HeaderValue::from_static(line));
        }
        remove_console_set_cookies(&mut response);
        let lines: Vec<_> = response.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(
            lines,
            [
                "session=s; Path=/",
                "assetpool_console_other=z",
                "assetpool_console"
            ]
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for address in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.100.255",
            "9.99.100.199",
            "255.255.255.255",
            "::1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let address: IpAddr = address.parse().unwrap();
            let mut text = String::from("x, ");
            push_address(&mut text, address);
            assert_eq!(text, format!("x, {address}"));
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "close, x-secret-hop".parse().unwrap());
        headers.insert("x-secret-hop", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn every_spelling_of_a_credential_or_identity_header_goes() {
        let mut headers = HeaderMap::new();
        for name in [
            "x_api_key",
            "X_API_TOKEN",
            "x-api_token",
            "Authorization",
            "x_assetpool_user_id",
            "X_Assetpool_User_Id",
            "x-assetpool_user-id",
            "x_assetpool-anything",
            "X-ASSETPOOL-KEY-ID",
            "x.assetpool.user.id",
            "x~api~key",
            "x+assetpool+environment",
            "x_forwarded_for",
            "X_Forwarded_Proto",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        for kept in ["x_custom", "x-assetpoolx", "x-api-keys", "x-forwarded-for"] {
            headers.insert(kept, HeaderValue::from_static("kept"));
        }
        remove_credentials_and_identity(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["x-api-keys", "x-assetpoolx", "x-forwarded-for", "x_custom"]
        );
    }

    #[test]
    fn only_a_lone_websocket_upgrade_is_one() {
        let upgrade = |connection: &str, protocols: &[&str]| {
            let mut headers = HeaderMap::new();
            headers.insert("connection", connection.parse().unwrap());
            for protocol in protocols {
                headers.append("upgrade", protocol.parse().unwrap());
            }
            is_websocket_upgrade(&headers)
        };
        assert!(upgrade("Upgrade", &["websocket"]));
        assert!(upgrade("keep-alive, upgrade", &["WebSocket"]));
        assert!(!upgrade("keep-alive", &["websocket"]));
        assert!(!upgrade("upgrade", &["h2c"]));
        assert!(!upgrade("upgrade", &["websocket, h2c"]));
        assert!(!upgrade("upgrade", &["websocket", "h2c"]));
        assert!(!upgrade("upgrade", &[]));
    }

    #[test]
    fn credentials_and_spoofed_identity_go_and_forwarded_for_appends() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "k".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("x-assetpool-user-id", "spoofed".parse().unwrap());
        headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        headers.insert("host", "example.com".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        remove_credentials_and_identity(&mut headers);
        let mut from_proxy = headers.clone();
        set_forwarded(
            &mut from_proxy,
            Hop {
                peer: IpAddr::from([127, 0, 0, 1]),
                peer_trusted: true,
                https: false,
            },
        );
        assert!(!from_proxy.contains_key("x-api-key"));
        assert!(!from_proxy.contains_key("authorization"));
        assert!(!from_proxy.contains_key("x-assetpool-user-id"));
        assert_eq!(from_proxy["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(from_proxy["x-forwarded-proto"], "https");
        assert_eq!(from_proxy["x-forwarded-host"], "example.com");
        // A client's own proto claim is not passed on.
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        set_forwarded(
            &mut headers,
            Hop {
                peer: IpAddr::from([192, 0, 2, 7]),
                peer_trusted: false,
                https: true,
            },
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "example.com");
    }

    #[test]
    fn a_trusted_proxys_forwarded_gains_this_hop_and_a_clients_goes() {
        let mut headers = HeaderMap::new();
        headers.append("forwarded", "for=192.0.2.43".parse().unwrap());
        headers.append(
            "forwarded",
            "for=198.51.100.17;proto=https".parse().unwrap(),
        );
        headers.insert("host", r#"odd"host\"#.parse().unwrap());
        headers.insert("x-real-ip", "192.0.2.43".parse().unwrap());
        let mut from_client = headers.clone();
        let peer = IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
        set_forwarded(
            &mut headers,
            Hop {
                peer,
                peer_trusted: true,
                https: true,
            },
        );
        assert_eq!(
            headers["forwarded"],
            r#"for=192.0.2.43, for=198.51.100.17;proto=https, for="[2001:db8::1]";proto=https;host="odd\"host\\""#
        );
        assert_eq!(headers["x-real-ip"], "192.0.2.43");
        set_forwarded(
            &mut from_client,
            Hop {
                peer,
                peer_trusted: false,
                https: false,
            },
        );
        assert!(!from_client.contains_key("forwarded"));
        assert!(!from_client.contains_key("x-real-ip"));
        assert_eq!(from_client["x-forwarded-for"], "2001:db8::1");
    }
}
