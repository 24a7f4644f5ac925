//! What [`KeyRing::verify`] refuses (docs/CONTRACT.md section 4), and how a key ring
//! behaves across a signing-key rotation.
//!
//! Every refused token is built so that exactly one thing is wrong with it: the
//! hand-made tokens are signed with the server's real key unless the point is a
//! foreign key, and a control test shows that the same hand-made construction
//! with nothing wrong is accepted.

// Helpers outside `#[test]` functions unwrap too: a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_core::service::new_signing_key_record;
use assetpool_core::store::SigningKeyRecord;
use assetpool_core::token::{
    AccessClaims, KeyRing, TokenError, TokenExpectations, CLOCK_LEEWAY_SECONDS, MAX_TOKEN_BYTES,
};
use assetpool_core::{Environment, KeySealer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Value};

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "assetpool";
const TOKEN_TTL_SECONDS: i64 = 3600;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

fn expectations() -> TokenExpectations {
    TokenExpectations {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        environment: Environment::Production,
    }
}

/// Claims a server with [`expectations`] would issue at [`now`].
fn claims() -> AccessClaims {
    let issued_at = now().timestamp();
    AccessClaims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: "usr_0001".to_owned(),
        iat: issued_at,
        nbf: issued_at,
        exp: issued_at + TOKEN_TTL_SECONDS,
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

fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

/// The server's signing key, as a real server would hold it.
struct Server {
    record: SigningKeyRecord,
    ring: KeyRing,
    pkcs8: Vec<u8>,
}

impl Server {
    fn new() -> Self {
        let record = new_signing_key_record(now(), &KeySealer::plain()).unwrap();
        let pkcs8 = KeySealer::plain()
            .open(record.kid.as_str(), &record.sealed_private_key)
            .unwrap();
        let ring = KeyRing::from_records(std::slice::from_ref(&record), &KeySealer::plain(), now())
            .unwrap();
        Server {
            record,
            ring,
            pkcs8,
        }
    }

    fn kid(&self) -> &str {
        self.record.kid.as_str()
    }

    fn sign(&self, claims: &AccessClaims) -> String {
        self.ring.sign(claims).unwrap()
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.ring.verify(token, &expectations(), now())
    }

    fn refuses(&self, token: &str, why: &str) {
        assert_eq!(
            self.verify(token).map(|claims| claims.sub),
            Err(TokenError::Invalid),
            "{why}"
        );
    }

    /// Signs any claims JSON with the server's private key through jsonwebtoken.
    fn sign_json(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }

    fn key_pair(&self) -> Ed25519KeyPair {
        Ed25519KeyPair::from_pkcs8(&self.pkcs8).unwrap()
    }
}

fn access_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    header
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A compact JWS made by hand: any header, any claims, signed with `pair`.
fn hand_signed(header: &Value, claims: &Value, pair: &Ed25519KeyPair) -> String {
    let signing_input = format!("{}.{}", encode_json(header), encode_json(claims));
    let signature = pair.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

fn foreign_key_pair() -> (Ed25519KeyPair, Vec<u8>) {
    let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pkcs8 = document.as_ref().to_vec();
    (Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap(), pkcs8)
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// Replaces the character at `index` with a different base64url character.
fn flip_at(text: &str, index: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn accepts_a_good_token() {
    let server = Server::new();
    let token = server.sign(&claims());
    assert_eq!(server.verify(&token).unwrap(), claims());
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(server.kid()));
}

#[test]
fn accepts_the_hand_made_controls() {
    // The constructions used below to build bad tokens make good tokens when
    // nothing is wrong, so their refusals are due to the one thing changed.
    let server = Server::new();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": server.kid()});
    let by_hand = hand_signed(&header, &claims_json(), &server.key_pair());
    assert_eq!(server.verify(&by_hand).unwrap(), claims());
    let through_library = server.sign_json(&access_header(server.kid()), &claims_json());
    assert_eq!(server.verify(&through_library).unwrap(), claims());
}

#[test]
fn refuses_a_tampered_signature() {
    let server = Server::new();
    let token = server.sign(&claims());
    let [header, payload, signature] = <[String; 3]>::try_from(parts(&token)).unwrap();
    for index in [0, signature.len() / 2, signature.len() - 2] {
        let tampered = format!("{header}.{payload}.{}", flip_at(&signature, index));
        server.refuses(&tampered, &format!("signature changed at {index}"));
    }
    server.refuses(&format!("{header}.{payload}."), "empty signature");
    let other = server.sign(&AccessClaims {
        jti: "another".to_owned(),
        ..claims()
    });
    let other_signature = &parts(&other)[2];
    server.refuses(
        &format!("{header}.{payload}.{other_signature}"),
        "signature of another token",
    );
}

#[test]
fn refuses_a_tampered_payload() {
    let server = Server::new();
    let token = server.sign(&claims());
    let [header, payload, signature] = <[String; 3]>::try_from(parts(&token)).unwrap();
    let mut altered = claims_json();
    altered["sub"] = json!("usr_admin");
    let tampered = format!("{header}.{}.{signature}", encode_json(&altered));
    server.refuses(&tampered, "payload with another subject");
    let tampered = format!(
        "{header}.{}.{signature}",
        flip_at(&payload, payload.len() / 2)
    );
    server.refuses(&tampered, "payload with a character changed");
}

#[test]
fn refuses_alg_none() {
    let server = Server::new();
    let payload = encode_json(&claims_json());
    let genuine_signature = parts(&server.sign(&claims()))[2].clone();
    for alg in ["none", "None", "NONE"] {
        let header = encode_json(&json!({"alg": alg, "typ": "at+jwt", "kid": server.kid()}));
        server.refuses(&format!("{header}.{payload}."), &format!("alg {alg}"));
        server.refuses(
            &format!("{header}.{payload}.{genuine_signature}"),
            &format!("alg {alg} with a signature"),
        );
    }
}

#[test]
fn refuses_eddsa_in_another_casing() {
    let server = Server::new();
    for alg in ["eddsa", "EDDSA", "EdDsa", "Ed25519"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": server.kid()});
        let token = hand_signed(&header, &claims_json(), &server.key_pair());
        server.refuses(&token, &format!("alg {alg}"));
    }
}

#[test]
fn refuses_hmac_tokens_made_with_the_public_key() {
    let server = Server::new();
    let public_key = server.record.public_key.clone();
    let (published_kid, published_key) = &server.ring.published()[0];
    assert_eq!(published_kid, server.kid());
    let jwk_x = KeyRing::encode_public_key(published_key);
    let secrets: [(&str, Vec<u8>); 2] = [
        ("raw public key", public_key),
        ("JWK x value", jwk_x.into_bytes()),
    ];
    for (what, secret) in &secrets {
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(algorithm);
            header.typ = Some("at+jwt".to_owned());
            header.kid = Some(server.kid().to_owned());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            server.refuses(&token, &format!("{algorithm:?} with the {what} as secret"));
        }
    }
}

#[test]
fn refuses_unknown_and_missing_kid() {
    let server = Server::new();
    let unknown = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "sig_unknown"});
    server.refuses(
        &hand_signed(&unknown, &claims_json(), &server.key_pair()),
        "unknown kid",
    );
    let empty = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": ""});
    server.refuses(
        &hand_signed(&empty, &claims_json(), &server.key_pair()),
        "empty kid",
    );
    let missing = json!({"alg": "EdDSA", "typ": "at+jwt"});
    server.refuses(
        &hand_signed(&missing, &claims_json(), &server.key_pair()),
        "missing kid",
    );
}

#[test]
fn ignores_jku_jwk_and_x5u_headers() {
    let server = Server::new();
    let (foreign, _) = foreign_key_pair();
    let foreign_x = URL_SAFE_NO_PAD.encode(foreign.public_key().as_ref());
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": foreign_x, "kid": "attacker", "alg": "EdDSA"});
    let pointers = [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("jwk", jwk),
        ("x5u", json!("https://attacker.example/key.pem")),
    ];
    let mut all = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker"});
    for (name, value) in &pointers {
        all[name] = value.clone();
        let mut one = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker"});
        one[name] = value.clone();
        let token = hand_signed(&one, &claims_json(), &foreign);
        // The header is well formed: the refusal is not a parse error.
        assert!(jsonwebtoken::decode_header(&token).is_ok(), "{name}");
        server.refuses(&token, &format!("{name} pointing to a foreign key"));
    }
    let token = hand_signed(&all, &claims_json(), &foreign);
    assert!(jsonwebtoken::decode_header(&token).is_ok());
    server.refuses(&token, "jku, jwk and x5u pointing to a foreign key");
    // The same headers next to the server's own kid do not help either.
    all["kid"] = json!(server.kid());
    server.refuses(
        &hand_signed(&all, &claims_json(), &foreign),
        "foreign key announced in jwk, server's kid",
    );
}

#[test]
fn refuses_a_foreign_key_using_the_servers_kid() {
    let server = Server::new();
    let (foreign, foreign_pkcs8) = foreign_key_pair();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": server.kid()});
    server.refuses(
        &hand_signed(&header, &claims_json(), &foreign),
        "foreign key, hand-made",
    );
    let token = jsonwebtoken::encode(
        &access_header(server.kid()),
        &claims(),
        &EncodingKey::from_ed_der(&foreign_pkcs8),
    )
    .unwrap();
    server.refuses(&token, "foreign key, through jsonwebtoken");
}

#[test]
fn refuses_wrong_issuer_audience_and_environment() {
    let server = Server::new();
    let cases = [
        AccessClaims {
            iss: "https://attacker.example".to_owned(),
            ..claims()
        },
        AccessClaims {
            iss: format!("{ISSUER}/"),
            ..claims()
        },
        AccessClaims {
            aud: "another-service".to_owned(),
            ..claims()
        },
        AccessClaims {
            env: Environment::Staging,
            ..claims()
        },
        AccessClaims {
            env: Environment::Development,
            ..claims()
        },
    ];
    for case in &cases {
        server.refuses(&server.sign(case), &format!("{case:?}"));
    }
    let mut unknown_environment = claims_json();
    unknown_environment["env"] = json!("prod");
    server.refuses(
        &server.sign_json(&access_header(server.kid()), &unknown_environment),
        "env outside the contract's names",
    );
}

#[test]
fn refuses_another_typ() {
    let server = Server::new();
    for typ in [Some("JWT"), Some("jwt"), Some("at+jwe"), None] {
        let mut header = access_header(server.kid());
        header.typ = typ.map(str::to_owned);
        let token = server.sign_json(&header, &claims_json());
        server.refuses(&token, &format!("typ {typ:?}"));
    }
}

#[test]
fn refuses_missing_or_mistyped_exp() {
    let server = Server::new();
    let header = access_header(server.kid());
    let mut without_exp = claims_json();
    without_exp.as_object_mut().unwrap().remove("exp");
    server.refuses(&server.sign_json(&header, &without_exp), "missing exp");
    for mistyped in [
        json!((now().timestamp() + TOKEN_TTL_SECONDS).to_string()),
        json!(null),
        json!(true),
        json!([now().timestamp() + TOKEN_TTL_SECONDS]),
    ] {
        let mut claims = claims_json();
        claims["exp"] = mistyped.clone();
        server.refuses(
            &server.sign_json(&header, &claims),
            &format!("exp {mistyped}"),
        );
    }
}

#[test]
fn refuses_nbf_and_iat_beyond_the_leeway() {
    let server = Server::new();
    let later = |seconds: i64| now().timestamp() + seconds;
    for seconds in [CLOCK_LEEWAY_SECONDS + 1, 120, 3600] {
        let not_yet = AccessClaims {
            nbf: later(seconds),
            ..claims()
        };
        server.refuses(&server.sign(&not_yet), &format!("nbf in {seconds} s"));
        let from_the_future = AccessClaims {
            iat: later(seconds),
            ..claims()
        };
        server.refuses(
            &server.sign(&from_the_future),
            &format!("iat in {seconds} s"),
        );
    }
    for seconds in [1, 30] {
        let skewed = AccessClaims {
            nbf: later(seconds),
            iat: later(seconds),
            ..claims()
        };
        assert_eq!(
            server.verify(&server.sign(&skewed)).unwrap(),
            skewed,
            "nbf and iat {seconds} s ahead are within the leeway"
        );
    }
}

#[test]
fn refuses_expired_tokens_as_expired() {
    let server = Server::new();
    for exp in [
        now().timestamp(),
        now().timestamp() - 1,
        now().timestamp() - 86_400,
    ] {
        let expired = AccessClaims {
            iat: exp - TOKEN_TTL_SECONDS,
            nbf: exp - TOKEN_TTL_SECONDS,
            exp,
            ..claims()
        };
        assert_eq!(
            server
                .verify(&server.sign(&expired))
                .map(|claims| claims.exp),
            Err(TokenError::Expired),
            "exp {exp}"
        );
    }
    // One second before expiry it is still good.
    let token = server.sign(&claims());
    let last_second = now() + Duration::seconds(TOKEN_TTL_SECONDS - 1);
    assert!(server
        .ring
        .verify(&token, &expectations(), last_second)
        .is_ok());
    assert_eq!(
        server
            .ring
            .verify(&token, &expectations(), last_second + Duration::seconds(1))
            .map(|claims| claims.exp),
        Err(TokenError::Expired)
    );
}

#[test]
fn refuses_tokens_over_the_size_limit() {
    let server = Server::new();
    let with_email = |length: usize| {
        let claims = AccessClaims {
            email: "a".repeat(length),
            ..claims()
        };
        (server.sign(&claims), claims)
    };
    let mut length = 2500;
    let (mut token, mut accepted) = with_email(length);
    assert!(token.len() <= MAX_TOKEN_BYTES);
    // Grow the token one character at a time: good up to the limit, refused beyond.
    loop {
        let (next_token, next_claims) = with_email(length + 1);
        if next_token.len() > MAX_TOKEN_BYTES {
            assert_eq!(server.verify(&token).unwrap(), accepted);
            server.refuses(&next_token, "one byte over the limit");
            break;
        }
        (token, accepted, length) = (next_token, next_claims, length + 1);
    }
    server.refuses(&with_email(10_000).0, "far over the limit");
}

#[test]
fn refuses_garbage() {
    let server = Server::new();
    let token = server.sign(&claims());
    for garbage in [
        String::new(),
        "a".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        format!("{token}.extra"),
        format!("{token} "),
        format!("Bearer {token}"),
    ] {
        server.refuses(&garbage, &format!("{garbage:?}"));
    }
}

#[test]
fn an_empty_ring_signs_and_verifies_nothing() {
    let server = Server::new();
    let token = server.sign(&claims());
    let empty = KeyRing::empty();
    assert_eq!(empty.sign(&claims()), Err(TokenError::Invalid));
    assert_eq!(
        empty
            .verify(&token, &expectations(), now())
            .map(|claims| claims.sub),
        Err(TokenError::Invalid)
    );
}

#[test]
fn rotation_keeps_old_tokens_until_the_old_key_retires() {
    let sealer = KeySealer::plain();
    let rotated_at = now() + Duration::hours(1);
    let retires_at = rotated_at + Duration::days(1);
    let old = new_signing_key_record(now(), &sealer).unwrap();
    let old_ring = KeyRing::from_records(std::slice::from_ref(&old), &sealer, now()).unwrap();
    // Valid past the old key's retirement, so that a refusal after it is the key's doing.
    let long_lived = AccessClaims {
        exp: (retires_at + Duration::days(1)).timestamp(),
        ..claims()
    };
    let old_token = old_ring.sign(&long_lived).unwrap();

    let new = new_signing_key_record(rotated_at, &sealer).unwrap();
    let retired_old = SigningKeyRecord {
        retired_at: Some(rotated_at),
        retires_at: Some(retires_at),
        ..old.clone()
    };
    // Newest first, as the store lists them.
    let records = [new.clone(), retired_old];
    let during = rotated_at + Duration::minutes(5);
    let ring = KeyRing::from_records(&records, &sealer, during).unwrap();
    assert_eq!(ring.active_kid(), Some(new.kid.as_str()));
    let published: Vec<&str> = ring
        .published()
        .iter()
        .map(|(kid, _)| kid.as_str())
        .collect();
    assert_eq!(published, [new.kid.as_str(), old.kid.as_str()]);
    assert_eq!(
        ring.verify(&old_token, &expectations(), during).unwrap(),
        long_lived
    );
    let new_token = ring.sign(&long_lived).unwrap();
    let new_header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(new_header.kid.as_deref(), Some(new.kid.as_str()));
    assert_eq!(
        ring.verify(&new_token, &expectations(), during).unwrap(),
        long_lived
    );

    let just_before = retires_at - Duration::seconds(1);
    let ring = KeyRing::from_records(&records, &sealer, just_before).unwrap();
    assert!(ring
        .verify(&old_token, &expectations(), just_before)
        .is_ok());

    for after in [retires_at, retires_at + Duration::seconds(1)] {
        let ring = KeyRing::from_records(&records, &sealer, after).unwrap();
        assert_eq!(ring.active_kid(), Some(new.kid.as_str()));
        assert_eq!(ring.published().len(), 1);
        assert_eq!(ring.published()[0].0, new.kid.as_str());
        assert_eq!(
            ring.verify(&old_token, &expectations(), after)
                .map(|claims| claims.sub),
            Err(TokenError::Invalid)
        );
        assert!(ring.verify(&new_token, &expectations(), after).is_ok());
    }
}

#[test]
fn a_stored_public_key_of_the_wrong_length_is_left_out_not_fatal() {
    let server = Server::new();
    let token = server.sign(&claims());
    for length in [0, 16, 31, 33] {
        let mut damaged = server.record.clone();
        damaged.public_key.resize(length, 7);
        let ring =
            KeyRing::from_records(std::slice::from_ref(&damaged), &KeySealer::plain(), now())
                .unwrap();
        assert!(ring.published().is_empty(), "{length} bytes published");
        assert_eq!(
            ring.verify(&token, &expectations(), now())
                .map(|claims| claims.sub),
            Err(TokenError::Invalid),
            "{length} bytes"
        );
    }
}
