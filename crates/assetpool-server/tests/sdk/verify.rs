//! `assetpool-verify` against the real server's tokens and JWKS.

use crate::helpers::{eventually, Server, EMAIL};
use assetpool_verify::{AccessClaims, Verified, Verifier, VerifyError, VerifyLayer};
use assetpool_wire::Environment;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::Ed25519KeyPair;
use serde_json::Value;
use std::time::Duration;
use tower::ServiceExt as _;

fn verifier(server: &Server) -> Verifier {
    Verifier::builder(&server.address, Environment::Production)
        .leeway(Duration::ZERO)
        .build()
        .unwrap()
}

async fn token(server: &Server) -> String {
    server.client().access_token().await.unwrap()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The token's claims, read without checking anything.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The same claims signed by a key the server never had, under `kid`.
fn forged(token: &str, kid: &str) -> String {
    let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ed_der(document.as_ref());
    jsonwebtoken::encode(&header, &claims_of(token), &key).unwrap()
}

/// `token` with one character of its payload changed.
fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(token);
    claims["sub"] = Value::from("usr_someone_else");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    parts.join(".")
}

async fn hello(claims: AccessClaims) -> String {
    claims.into_inner().email
}

async fn call(app: &Router, header: Option<(&str, String)>) -> (u16, String) {
    let mut request = Request::get("/hello");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_layer_accepts_good_tokens_and_refuses_bad_ones() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let good = token(&server).await;
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(VerifyLayer::new(verifier(&server)));

    assert_eq!(
        call(&app, Some(("x-api-token", good.clone()))).await,
        (200, EMAIL.to_owned())
    );
    let bearer = format!("Bearer {good}");
    assert_eq!(call(&app, Some(("authorization", bearer))).await.0, 200);

    let (status, body) = call(&app, None).await;
    assert_eq!(status, 401);
    assert!(body.contains("missing_token"), "{body}");
    for bad in [
        tampered(&good),
        forged(&good, &kid(&good)),
        "garbage".to_owned(),
    ] {
        let (status, body) = call(&app, Some(("x-api-token", bad))).await;
        assert_eq!(status, 401);
        assert!(body.contains("invalid_token"), "{body}");
    }
    // alg none, with the real claims.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        good.split('.').nth(1).unwrap()
    );
    assert_eq!(
        verifier(&server).verify(&none).await,
        Err(VerifyError::Invalid)
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let server = Server::spawn(Duration::from_secs(1)).await;
    let short = token(&server).await;
    let verifier = verifier(&server);
    assert!(verifier.verify(&short).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(verifier.verify(&short).await, Err(VerifyError::Expired));
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(VerifyLayer::new(verifier));
    let (status, body) = call(&app, Some(("x-api-token", short))).await;
    assert_eq!(status, 401);
    assert!(body.contains("token_expired"), "{body}");
}

#[tokio::test]
async fn tokens_of_another_environment_or_issuer_are_refused() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let good = token(&server).await;
    let staging = Verifier::builder(&server.address, Environment::Staging)
        .build()
        .unwrap();
    assert_eq!(staging.verify(&good).await, Err(VerifyError::Invalid));
    let other_issuer = Verifier::builder(&server.address, Environment::Production)
        .issuer("https://elsewhere.example.com")
        .build()
        .unwrap();
    assert_eq!(other_issuer.verify(&good).await, Err(VerifyError::Invalid));
}

/// Every application of a server shares its issuer and audience: a backend
/// that names its application refuses the tokens of any other one.
#[tokio::test]
async fn tokens_of_another_application_are_refused_when_one_is_named() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let good = token(&server).await;
    let own = claims_of(&good)["app"].as_str().unwrap().to_owned();
    let other_key = crate::helpers::create_key(&server.admin, None).await;
    let other = assetpool_client::Client::builder(
        &server.address,
        &other_key,
        assetpool_client::Credentials::new(EMAIL, crate::helpers::PASSWORD),
    )
    .build()
    .unwrap()
    .access_token()
    .await
    .unwrap();
    assert_ne!(claims_of(&other)["app"], own.as_str());
    let named = Verifier::builder(&server.address, Environment::Production)
        .application(&own)
        .build()
        .unwrap();
    assert_eq!(named.verify(&good).await.unwrap().app, own);
    assert_eq!(named.verify(&other).await, Err(VerifyError::Invalid));
    // Without an application, any application's token passes (documented).
    assert!(verifier(&server).verify(&other).await.is_ok());
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_a_minute() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let good = token(&server).await;
    let verifier = verifier(&server);
    assert!(verifier.verify(&good).await.is_ok());
    assert_eq!(verifier.jwks_fetches(), 1);
    assert_eq!(
        verifier.verify(&forged(&good, "sk_unknown_1")).await,
        Err(VerifyError::Invalid)
    );
    assert_eq!(verifier.jwks_fetches(), 2, "an unknown kid refetches");
    assert_eq!(
        verifier.verify(&forged(&good, "sk_unknown_2")).await,
        Err(VerifyError::Invalid)
    );
    assert_eq!(verifier.jwks_fetches(), 2, "not again within the minute");
    assert!(verifier.verify(&good).await.is_ok());
    assert_eq!(verifier.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_signing_key_rotation_is_picked_up() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let old = token(&server).await;
    let verifier = verifier(&server);
    assert!(verifier.verify(&old).await.is_ok());
    let rotated = server.admin.rotate_signing_key().await.unwrap();
    assert_ne!(rotated.kid, kid(&old));
    // The server follows the change feed; new logins are then signed with the new key.
    let started = std::time::Instant::now();
    let new = loop {
        let new = token(&server).await;
        if kid(&new) == rotated.kid {
            break new;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still the old key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let claims = verifier.verify(&new).await.unwrap();
    assert_eq!(claims.email, EMAIL);
    assert_eq!(verifier.jwks_fetches(), 2);
    // Tokens of the old key stay valid until they expire.
    assert!(verifier.verify(&old).await.is_ok());
}

#[tokio::test]
async fn introspection_refuses_a_revoked_session() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let good = token(&server).await;
    let verifier = Verifier::builder(&server.address, Environment::Production)
        .introspection(&server.key, Duration::from_millis(300))
        .build()
        .unwrap();
    let claims = verifier.verify(&good).await.unwrap();
    assert_eq!(claims.email, EMAIL);
    // Offline verification alone still accepts a logged-out token.
    server.logout(&good).await;
    let offline = Verifier::builder(&server.address, Environment::Production)
        .build()
        .unwrap();
    assert!(offline.verify(&good).await.is_ok());
    eventually(Duration::from_secs(3), || async {
        verifier.verify(&good).await == Err(VerifyError::Revoked)
    })
    .await;
}

#[tokio::test]
async fn the_verified_extractor_needs_no_layer() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let good = token(&server).await;
    async fn whoami(Verified(claims): Verified) -> String {
        claims.into_inner().email
    }
    let app = Router::new()
        .route("/hello", get(whoami))
        .with_state(verifier(&server));
    assert_eq!(
        call(&app, Some(("x-api-token", good))).await,
        (200, EMAIL.to_owned())
    );
    let (status, body) = call(&app, Some(("x-api-token", "garbage".to_owned()))).await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_token"), "{body}");
}

#[tokio::test]
async fn an_unreachable_jwks_is_not_fetched_on_every_request() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let token = token(&server).await;
    // Nothing listens on port 1: every fetch fails at once.
    let verifier = Verifier::builder("http://127.0.0.1:1", Environment::Production)
        .issuer(server.address.clone())
        .build()
        .unwrap();
    for _ in 0..5 {
        assert!(verifier.verify(&token).await.is_err());
    }
    assert_eq!(verifier.jwks_fetches(), 1, "one failed fetch, then a pause");
}
