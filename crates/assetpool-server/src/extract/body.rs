//! Request bodies and texts, parsed strictly: JSON objects with no
//! duplicate key, forms with no repeated parameter, at most
//! [`MAX_BODY_BYTES`], and no control character in any text a client sends
//! (bodies, paths, queries; [`assetpool_wire::text`]).

use crate::error::ApiError;
use assetpool_wire::text::contains_control;
use assetpool_wire::ErrorCode;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Uri};
use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

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

/// The check of assetpool's own routes (see [`crate::middleware::OwnRoutesLayer`]):
/// a request whose path or query decodes to a control character is refused
/// with 400 `invalid_request` before any handler sees it (PostgreSQL cannot
/// store NUL, and no id, email or parameter holds any control character).
/// The one exception is the suffix of `/auth/verify/...`: Envoy's
/// `ext_authz` appends the original request's path and query there, and they
/// belong to the protected application, which may well accept `%0A` in a
/// search term.
pub fn refuse_control_characters(uri: &Uri) -> Result<(), ApiError> {
    if uri.path().starts_with("/auth/verify/") {
        return Ok(());
    }
    let decodes_to_control = |text: &str| {
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        contains_control(&decoded)
    };
    if decodes_to_control(uri.path()) || uri.query().is_some_and(decodes_to_control) {
        return Err(control_character());
    }
    Ok(())
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
}
