//! Extractors: credentials from headers, strict JSON and form bodies, the client address.
//!
//! Credentials are read only from headers: the API key from `x-api-key`, the
//! token from `x-api-token` or `Authorization: Bearer`. Query strings and
//! cookies are never consulted.

use crate::error::ApiError;
use crate::state::AppState;
use crate::usage::UsageSlot;
use assetpool_core::service::Verified;
use assetpool_wire::text::contains_control;
use assetpool_wire::{ErrorCode, API_KEY_HEADER, API_TOKEN_HEADER};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The credentials a request presents. `Debug` never shows them.
#[derive(Default, Clone)]
pub struct Credentials {
    /// The `x-api-key` value.
    pub api_key: Option<String>,
    /// The token from `x-api-token` or `Authorization: Bearer`.
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Reads a header that may appear at most once; `Err` when repeated.
fn single_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_request(format!(
            "the {name} header may appear only once"
        )));
    }
    // A value that is not visible ASCII cannot be a well-formed credential;
    // it is kept as an empty string, which later fails the format check.
    Ok(first.map(|value| value.to_str().map(str::to_owned).unwrap_or_default()))
}

impl Credentials {
    /// Reads the credentials from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let api_key = single_header(headers, API_KEY_HEADER)?;
        let header_token = single_header(headers, API_TOKEN_HEADER)?;
        let authorization = single_header(headers, AUTHORIZATION.as_str())?;
        let bearer = authorization.and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
        let token = match (header_token, bearer) {
            (Some(header_token), Some(bearer)) if header_token != bearer => {
                return Err(ApiError::invalid_request(
                    "x-api-token and Authorization carry different tokens",
                ))
            }
            (Some(token), _) | (None, Some(token)) => Some(token),
            (None, None) => None,
        };
        Ok(Credentials { api_key, token })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Credentials::from_headers(&parts.headers)
    }
}

/// A request whose API key and token were both accepted (CONTRACT section 3, in order).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Verified);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Authenticated(
            authenticate_request(&parts.headers, &parts.extensions, state).await?,
        ))
    }
}

/// Checks the credentials of a request (CONTRACT section 3, in order): the
/// one check behind [`Authenticated`], `/auth/verify` and the reverse proxy.
/// The API key first ([`AuthService::authenticate_key`]); once it is
/// accepted, the request is counted against it (usage) through the
/// [`UsageSlot`] in `extensions`, when there is one; then the token
/// ([`AuthService::authenticate_token`]).
///
/// [`AuthService::authenticate_key`]: assetpool_core::AuthService::authenticate_key
/// [`AuthService::authenticate_token`]: assetpool_core::AuthService::authenticate_token
pub async fn authenticate_request(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    state: &AppState,
) -> Result<Verified, ApiError> {
    let credentials = Credentials::from_headers(headers)?;
    let slot = extensions.get::<Arc<UsageSlot>>();
    let client = match slot {
        Some(slot) => slot.client,
        None => client_address(headers, extensions, state),
    };
    let key = state
        .service
        .authenticate_key(credentials.api_key.as_deref(), Some(client))
        .await?;
    if let Some(slot) = slot {
        slot.attach(&key);
    }
    let claims = state
        .service
        .authenticate_token(&key.record, credentials.token.as_deref())?;
    Ok(Verified { key, claims })
}

/// The address of the client: the socket's peer or, when that peer is a
/// trusted proxy, the client its forwarding headers name ([`TrustedProxies`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(
            &parts.headers,
            &parts.extensions,
            state,
        )))
    }
}

/// The client of a request: the socket's peer, or the client a trusted
/// proxy's forwarding headers name.
pub fn client_address(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    state: &AppState,
) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    state.trusted_proxies.client_address(peer, headers)
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

/// Whether the request's one `Content-Type` is `expected` (parameters
/// aside). Two `Content-Type` headers are refused: which one a framework
/// believes differs between stacks.
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> Result<bool, ApiError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_request(
            "the request has more than one Content-Type header",
        ));
    }
    Ok(first
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected)))
}

/// The refusal of a text (field, name, parameter) holding a control character.
fn control_character() -> ApiError {
    ApiError::invalid_request("a text in the request holds a control character")
}

async fn read_body(request: Request) -> Result<axum::body::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge));
    }
    axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))
}

/// A JSON body, checked strictly: `application/json`, at most 16 KiB, no
/// duplicate keys at any depth, no control character in any string or key,
/// no trailing bytes. Unknown fields are ignored.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(request.headers(), "application/json")? {
            return Err(ApiError::with_message(
                ErrorCode::UnsupportedMediaType,
                "the request body must be application/json",
            ));
        }
        let body = read_body(request).await?;
        parse_strict_json(&body).map(StrictJson)
    }
}

/// Parses a JSON request body the way [`StrictJson`] does, without the
/// `Content-Type` check: at most [`MAX_BODY_BYTES`] (else `payload_too_large`),
/// one JSON object with no duplicate key at any depth and nothing after it,
/// no control character in any string or key at any depth
/// ([`assetpool_wire::text`]), then deserialised as `T` (unknown fields
/// ignored). Every other refusal is `invalid_request`, with a message that
/// never echoes the input.
pub fn parse_strict_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge));
    }
    check_json_text(body)?;
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::invalid_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice::<T>(body).map_err(|_| {
        ApiError::invalid_request(
            "the request body is missing a required field or has a field of the wrong type",
        )
    })
}

/// Middleware of assetpool's own routes: a request whose path or query
/// decodes to a control character is refused with 400 `invalid_request`
/// before any handler sees it (PostgreSQL cannot store NUL, and no id, email
/// or parameter holds any control character). The one exception is the
/// suffix of `/auth/verify/...`: Envoy's `ext_authz` appends the original
/// request's path and query there, and they belong to the protected
/// application, which may well accept `%0A` in a search term.
pub async fn refuse_control_characters(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri();
    if uri.path().starts_with("/auth/verify/") {
        return next.run(request).await;
    }
    let decodes_to_control = |text: &str| {
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        contains_control(&decoded)
    };
    if decodes_to_control(uri.path()) || uri.query().is_some_and(decodes_to_control) {
        return axum::response::IntoResponse::into_response(control_character());
    }
    next.run(request).await
}

/// Checks that `body` is one JSON value with no object repeating a key and no
/// control character in any string or key, at any depth.
pub fn check_json_text(body: &[u8]) -> Result<(), ApiError> {
    let checked = serde_json::from_slice::<CheckedJson>(body).map_err(|_| {
        ApiError::invalid_request("the request body is not valid JSON (or repeats a key)")
    })?;
    if checked.control {
        return Err(control_character());
    }
    Ok(())
}

/// An `application/x-www-form-urlencoded` body in which no parameter repeats
/// (RFC 6749 section 3.2).
#[derive(Debug, Default)]
pub struct StrictForm(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for StrictForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(request.headers(), "application/x-www-form-urlencoded")? {
            return Err(ApiError::with_message(
                ErrorCode::UnsupportedMediaType,
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        let body = read_body(request).await?;
        parse_strict_form(&body).map(StrictForm)
    }
}

/// Parses an `application/x-www-form-urlencoded` body the way [`StrictForm`]
/// does, without the `Content-Type` check: at most [`MAX_BODY_BYTES`] (else
/// `payload_too_large`), no parameter name twice and no control character in
/// a decoded name or value (else `invalid_request`, with a message that never
/// echoes the input). Names and values are percent-decoded with `+` as a
/// space; bytes that do not decode to UTF-8 become U+FFFD, as the WHATWG URL
/// standard's form decoding does.
pub fn parse_strict_form(body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::invalid_request("the form body is malformed"))?;
    let mut fields = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if contains_control(&name) || contains_control(&value) {
            return Err(control_character());
        }
        if fields.insert(name, value).is_some() {
            return Err(ApiError::invalid_request(
                "a form parameter appears more than once",
            ));
        }
    }
    Ok(fields)
}

/// Deserialises any JSON value, failing on an object that repeats a key and
/// noting whether any string or key holds a control character.
struct CheckedJson {
    control: bool,
}

impl CheckedJson {
    const CLEAN: CheckedJson = CheckedJson { control: false };
}

impl<'de> Deserialize<'de> for CheckedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedJsonVisitor)
    }
}

struct CheckedJsonVisitor;

impl<'de> Visitor<'de> for CheckedJsonVisitor {
    type Value = CheckedJson;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(CheckedJson::CLEAN)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(CheckedJson::CLEAN)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(CheckedJson::CLEAN)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(CheckedJson::CLEAN)
    }
    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(CheckedJson {
            control: contains_control(text),
        })
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(CheckedJson::CLEAN)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut control = false;
        while let Some(element) = seq.next_element::<CheckedJson>()? {
            control |= element.control;
        }
        Ok(CheckedJson { control })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        let mut control = false;
        while let Some(key) = map.next_key::<String>()? {
            control |= contains_control(&key);
            if !seen.insert(key) {
                return Err(A::Error::custom("duplicate key"));
            }
            control |= map.next_value::<CheckedJson>()?.control;
        }
        Ok(CheckedJson { control })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let ok = br#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#;
        assert!(serde_json::from_slice::<CheckedJson>(ok).is_ok());
        for bad in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"a": {"b": 1, "b": 1}}"#,
            br#"[{"x": 1, "x": 1}]"#,
            br#"{"a": 1} x"#,
        ] {
            assert!(serde_json::from_slice::<CheckedJson>(bad).is_err());
        }
    }

    #[test]
    fn strict_body_parsers_refuse_bodies_over_the_limit() {
        let mut json = br#"{"refreshToken": "rt"}"#.to_vec();
        json.resize(MAX_BODY_BYTES, b' ');
        let parsed = parse_strict_json::<assetpool_wire::RefreshRequest>(&json).unwrap();
        assert_eq!(parsed.refresh_token, "rt");
        json.push(b' ');
        let refused = parse_strict_json::<assetpool_wire::RefreshRequest>(&json).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::PayloadTooLarge);
        let refused = parse_strict_json::<serde_json::Value>(b"[1]").unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidRequest);

        let mut form = b"grant_type=password&username=a%40b".to_vec();
        form.resize(MAX_BODY_BYTES, b'&');
        let fields = parse_strict_form(&form).unwrap();
        assert_eq!(fields.get("username").map(String::as_str), Some("a@b"));
        form.push(b'&');
        assert_eq!(
            parse_strict_form(&form).unwrap_err().code(),
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            parse_strict_form(b"a=1&a=2").unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn credentials_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        let credentials = Credentials::from_headers(&headers).unwrap();
        assert_eq!(credentials.token.as_deref(), Some("abc"));
        headers.insert(API_TOKEN_HEADER, "abc".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_ok());
        headers.insert(API_TOKEN_HEADER, "other".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.append(API_KEY_HEADER, "a".parse().unwrap());
        headers.append(API_KEY_HEADER, "b".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Basic Zm9vOg==".parse().unwrap());
        assert!(Credentials::from_headers(&headers).unwrap().token.is_none());
    }
}

#[cfg(test)]
mod client_address_tests {
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
