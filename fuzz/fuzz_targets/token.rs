//! Fuzzes `KeyRing::verify`, the check behind every bearer token.
//!
//! A key ring with one fresh Ed25519 key is built once per process. The first
//! input byte picks a mode:
//! - even: the rest is the presented token as it is (lossy UTF-8);
//! - odd: the rest drives `arbitrary` to pick a real token (valid, expired, or
//!   signed by a foreign key), a list of edits (bytes of the compact form,
//!   bytes of a decoded segment, JSON fields of the header or claims,
//!   segment order, base64 alphabet and padding) and whether to sign the
//!   result again with the ring's key, a foreign key, or not at all. This gets
//!   the fuzzer past base64 and the signature to the header and claim checks.
//!
//! Whatever verifies (or is refused only as expired) must carry a valid
//! Ed25519 signature by the ring's key, checked independently with `ring`,
//! over a header naming `EdDSA`, an accepted `typ` and the ring's `kid`, and
//! claims with the expected issuer, audience and environment, `nbf`/`iat` not
//! beyond the leeway and `exp` in the future (past for "expired"). A token
//! that was not signed again verifies only if it is, byte for byte, a token
//! the ring signed. The untouched valid token verifies; the untouched expired
//! one is refused as expired.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use assetpool_core::service::new_signing_key_record;
use assetpool_core::token::{
    AccessClaims, KeyRing, TokenError, TokenExpectations, CLOCK_LEEWAY_SECONDS, MAX_TOKEN_BYTES,
};
use assetpool_core::{Environment, KeySealer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::OnceLock;

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "assetpool";
const NOW: i64 = 1_900_000_000;

struct Fixture {
    ring: KeyRing,
    kid: String,
    public_key: Vec<u8>,
    pair: Ed25519KeyPair,
    foreign: Ed25519KeyPair,
    expectations: TokenExpectations,
    now: DateTime<Utc>,
    valid: String,
    expired: String,
    foreign_signed: String,
}

fn claims(exp: i64) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: "usr_0001".to_owned(),
        iat: NOW - 10,
        nbf: NOW - 10,
        exp,
        jti: "0123456789abcdef0123456789abcdef".to_owned(),
        sid: "ses_0001".to_owned(),
        app: "app_0001".to_owned(),
        env: Environment::Production,
        client_id: "app_0001".to_owned(),
        email: "user@example.test".to_owned(),
        key_id: None,
        scope: None,
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = DateTime::from_timestamp(NOW, 0).expect("a valid time");
        let sealer = KeySealer::plain();
        let record = new_signing_key_record(now, &sealer).expect("a signing key");
        let pkcs8 = sealer
            .open(record.kid.as_str(), &record.sealed_private_key)
            .expect("a plain key opens");
        let ring =
            KeyRing::from_records(std::slice::from_ref(&record), &sealer, now).expect("a key ring");
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("a PKCS#8 Ed25519 key");
        let foreign_document =
            Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("a key");
        let foreign =
            Ed25519KeyPair::from_pkcs8(foreign_document.as_ref()).expect("a PKCS#8 Ed25519 key");
        let valid = ring.sign(&claims(NOW + 3600)).expect("signed");
        let expired = ring.sign(&claims(NOW - 1)).expect("signed");
        let mut fixture = Fixture {
            ring,
            kid: record.kid.to_string(),
            public_key: record.public_key.clone(),
            pair,
            foreign,
            expectations: TokenExpectations {
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                environment: Environment::Production,
            },
            now,
            valid,
            expired,
            foreign_signed: String::new(),
        };
        fixture.foreign_signed = resign(&fixture.valid, &fixture.foreign);
        // The harness is only meaningful if its own tokens get the answers
        // the checks below rely on.
        let verify = |token: &str| fixture.ring.verify(token, &fixture.expectations, now);
        assert!(
            verify(&fixture.valid).is_ok(),
            "the fixture's valid token is refused"
        );
        assert_eq!(
            verify(&fixture.expired).map(|_| ()),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&fixture.foreign_signed).map(|_| ()),
            Err(TokenError::Invalid)
        );
        fixture
    })
}

/// Replaces the last segment of `token` by a signature of everything before it.
fn resign(token: &str, pair: &Ed25519KeyPair) -> String {
    let signing_input = token.rsplit_once('.').map_or(token, |(input, _)| input);
    let signature = pair.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// The JSON object in a segment, for editing (lossy UTF-8).
fn decode_json(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_str(&String::from_utf8_lossy(&bytes)).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The header members `verify` decides on. Other members are skipped the
/// way `jsonwebtoken` skips them (`serde_json` checks neither UTF-8 nor the
/// range of numbers in a member it ignores).
#[derive(Deserialize)]
struct SeenHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
}

/// The claims `verify` decides on.
#[derive(Deserialize)]
struct SeenClaims {
    iss: Option<String>,
    aud: Option<String>,
    sub: Option<String>,
    env: Option<String>,
    nbf: Option<i64>,
    iat: Option<i64>,
    exp: Option<i64>,
}

fn decode_segment<T: DeserializeOwned>(segment: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
}

/// The invariants of a token `verify` did not refuse as invalid.
fn check_accepted(token: &str, result: &Result<AccessClaims, TokenError>) {
    let fixture = fixture();
    assert!(token.len() <= MAX_TOKEN_BYTES, "an oversized token passed");
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(
        segments.len(),
        3,
        "a token without three segments passed: {token:?}"
    );
    let signature = URL_SAFE_NO_PAD
        .decode(segments[2])
        .expect("a passed token's signature is base64url");
    let signing_input = format!("{}.{}", segments[0], segments[1]);
    assert!(
        UnparsedPublicKey::new(&ED25519, &fixture.public_key)
            .verify(signing_input.as_bytes(), &signature)
            .is_ok(),
        "a token not signed by the ring's key passed: {token:?}"
    );
    let Some(header) = decode_segment::<SeenHeader>(segments[0]) else {
        panic!("a passed token's header does not decode: {token:?}");
    };
    assert_eq!(header.alg.as_deref(), Some("EdDSA"));
    assert_eq!(header.kid.as_deref(), Some(fixture.kid.as_str()));
    let typ = header.typ.unwrap_or_default();
    assert!(
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"),
        "a token with typ {typ:?} passed"
    );
    let Some(seen) = decode_segment::<SeenClaims>(segments[1]) else {
        panic!("a passed token's claims do not decode: {token:?}");
    };
    assert_eq!(seen.iss.as_deref(), Some(ISSUER));
    assert_eq!(seen.aud.as_deref(), Some(AUDIENCE));
    assert_eq!(seen.env.as_deref(), Some("production"));
    let latest_start = NOW + CLOCK_LEEWAY_SECONDS;
    assert!(
        seen.nbf.is_some_and(|nbf| nbf <= latest_start),
        "nbf in the future passed"
    );
    assert!(
        seen.iat.is_some_and(|iat| iat <= latest_start),
        "iat in the future passed"
    );
    let exp = seen.exp.expect("a passed token has a numeric exp");
    match result {
        Ok(claims) => {
            assert!(exp > NOW, "an expired token verified");
            assert_eq!(claims.iss, ISSUER);
            assert_eq!(claims.aud, AUDIENCE);
            assert_eq!(claims.env, fixture.expectations.environment);
            assert_eq!(claims.exp, exp);
            assert!(claims.nbf <= latest_start && claims.iat <= latest_start);
            assert_eq!(seen.sub.as_deref(), Some(claims.sub.as_str()));
        }
        Err(_) => assert!(exp <= NOW, "a token in date was called expired"),
    }
}

fn verify(token: &str) -> Result<AccessClaims, TokenError> {
    let fixture = fixture();
    let result = fixture
        .ring
        .verify(token, &fixture.expectations, fixture.now);
    if !matches!(result, Err(TokenError::Invalid)) {
        check_accepted(token, &result);
    }
    result
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Base {
    Valid,
    Expired,
    ForeignSigned,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Signer {
    Keep,
    Ring,
    Foreign,
    Empty,
}

#[derive(Arbitrary, Debug)]
enum Field {
    Alg,
    Typ,
    Kid,
    Jku,
    Jwk,
    X5u,
    Crit,
    Iss,
    Aud,
    Sub,
    Iat,
    Nbf,
    Exp,
    Jti,
    Sid,
    App,
    Env,
    ClientId,
    Email,
    Other(String),
}

impl Field {
    fn name(&self) -> &str {
        match self {
            Field::Alg => "alg",
            Field::Typ => "typ",
            Field::Kid => "kid",
            Field::Jku => "jku",
            Field::Jwk => "jwk",
            Field::X5u => "x5u",
            Field::Crit => "crit",
            Field::Iss => "iss",
            Field::Aud => "aud",
            Field::Sub => "sub",
            Field::Iat => "iat",
            Field::Nbf => "nbf",
            Field::Exp => "exp",
            Field::Jti => "jti",
            Field::Sid => "sid",
            Field::App => "app",
            Field::Env => "env",
            Field::ClientId => "client_id",
            Field::Email => "email",
            Field::Other(name) => name,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FieldValue {
    Remove,
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    /// `NOW` plus this many seconds.
    Time(i32),
    Text(String),
    Known(u8),
    Array(Vec<String>),
    Object(Vec<(String, i64)>),
}

const KNOWN: &[&str] = &[
    "EdDSA",
    "none",
    "None",
    "HS256",
    "RS256",
    "ES256",
    "eddsa",
    "at+jwt",
    "AT+JWT",
    "application/at+jwt",
    "JWT",
    "",
    ISSUER,
    AUDIENCE,
    "production",
    "staging",
    "development",
    "prod",
    "https://auth.example.test/",
    "sig_unknown",
];

impl FieldValue {
    fn to_json(&self, kid: &str) -> Option<Value> {
        Some(match self {
            FieldValue::Remove => return None,
            FieldValue::Null => Value::Null,
            FieldValue::Bool(value) => Value::from(*value),
            FieldValue::Integer(value) => Value::from(*value),
            FieldValue::Float(value) => {
                serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number)
            }
            FieldValue::Time(offset) => Value::from(NOW + i64::from(*offset)),
            FieldValue::Text(text) => Value::from(text.as_str()),
            FieldValue::Known(index) => {
                let index = usize::from(*index) % (KNOWN.len() + 1);
                Value::from(KNOWN.get(index).copied().unwrap_or(kid))
            }
            FieldValue::Array(items) => Value::from(items.clone()),
            FieldValue::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::from(*value)))
                    .collect(),
            ),
        })
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Byte {
        position: u16,
        byte: u8,
    },
    Insert {
        position: u16,
        byte: u8,
    },
    Remove {
        position: u16,
    },
    Truncate {
        length: u16,
    },
    DecodedXor {
        segment: u8,
        position: u16,
        xor: u8,
    },
    SetField {
        in_header: bool,
        field: Field,
        value: FieldValue,
    },
    /// Re-encodes a segment with padding, or with the standard alphabet.
    Reencode {
        segment: u8,
        padded: bool,
    },
    SwapSegments {
        first: u8,
        second: u8,
    },
    RawSegment {
        segment: u8,
        text: String,
    },
}

#[derive(Arbitrary, Debug)]
struct Mutation {
    base: Base,
    edits: Vec<Edit>,
    signer: Signer,
}

fn segment_index(segments: &[String], segment: u8) -> usize {
    usize::from(segment) % segments.len().max(1)
}

fn apply(token: &str, edit: &Edit, kid: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = |position: u16, len: usize| usize::from(position) % (len + 1);
    let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
    match edit {
        Edit::Byte { position, byte } => {
            if !bytes.is_empty() {
                let index = usize::from(*position) % bytes.len();
                bytes[index] = *byte;
            }
        }
        Edit::Insert { position, byte } => bytes.insert(at(*position, bytes.len()), *byte),
        Edit::Remove { position } => {
            if !bytes.is_empty() {
                bytes.remove(usize::from(*position) % bytes.len());
            }
        }
        Edit::Truncate { length } => bytes.truncate(usize::from(*length)),
        Edit::DecodedXor {
            segment,
            position,
            xor,
        } => {
            let index = segment_index(&segments, *segment);
            if let Ok(mut decoded) = URL_SAFE_NO_PAD.decode(&segments[index]) {
                if !decoded.is_empty() {
                    let position = usize::from(*position) % decoded.len();
                    decoded[position] ^= *xor;
                }
                segments[index] = URL_SAFE_NO_PAD.encode(decoded);
            }
            return segments.join(".");
        }
        Edit::SetField {
            in_header,
            field,
            value,
        } => {
            let index = if *in_header { 0 } else { 1 };
            if let Some(mut map) = segments.get(index).and_then(|segment| decode_json(segment)) {
                match value.to_json(kid) {
                    Some(value) => map.insert(field.name().to_owned(), value),
                    None => map.remove(field.name()),
                };
                let encoded = serde_json::to_vec(&Value::Object(map)).unwrap_or_default();
                segments[index] = URL_SAFE_NO_PAD.encode(encoded);
            }
            return segments.join(".");
        }
        Edit::Reencode { segment, padded } => {
            let index = segment_index(&segments, *segment);
            if let Ok(decoded) = URL_SAFE_NO_PAD.decode(&segments[index]) {
                segments[index] = if *padded {
                    URL_SAFE.encode(decoded)
                } else {
                    STANDARD.encode(decoded)
                };
            }
            return segments.join(".");
        }
        Edit::SwapSegments { first, second } => {
            let first = segment_index(&segments, *first);
            let second = segment_index(&segments, *second);
            segments.swap(first, second);
            return segments.join(".");
        }
        Edit::RawSegment { segment, text } => {
            let index = segment_index(&segments, *segment);
            segments[index] = text.clone();
            return segments.join(".");
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn run_mutation(mutation: &Mutation) {
    let fixture = fixture();
    let base = match mutation.base {
        Base::Valid => &fixture.valid,
        Base::Expired => &fixture.expired,
        Base::ForeignSigned => &fixture.foreign_signed,
    };
    let mut token = base.clone();
    for edit in mutation.edits.iter().take(8) {
        token = apply(&token, edit, &fixture.kid);
    }
    token = match mutation.signer {
        Signer::Keep => token,
        Signer::Ring => resign(&token, &fixture.pair),
        Signer::Foreign => resign(&token, &fixture.foreign),
        Signer::Empty => match token.rsplit_once('.') {
            Some((input, _)) => format!("{input}."),
            None => format!("{token}."),
        },
    };
    let result = verify(&token);
    if mutation.signer == Signer::Keep && !matches!(result, Err(TokenError::Invalid)) {
        assert!(
            token == fixture.valid || token == fixture.expired,
            "an edited token passed without being signed again: {token:?}"
        );
    }
    if mutation.edits.is_empty() && matches!(mutation.signer, Signer::Keep | Signer::Ring) {
        match mutation.base {
            Base::Valid => assert!(result.is_ok(), "the valid token was refused: {result:?}"),
            Base::Expired => assert_eq!(result.map(|_| ()), Err(TokenError::Expired)),
            Base::ForeignSigned => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        let result = verify(&token);
        assert!(
            matches!(result, Err(TokenError::Invalid))
                || *token == fixture().valid
                || *token == fixture().expired,
            "a token the ring did not sign passed: {token:?}"
        );
    } else if let Ok(mutation) = Mutation::arbitrary_take_rest(Unstructured::new(rest)) {
        run_mutation(&mutation);
    }
});
