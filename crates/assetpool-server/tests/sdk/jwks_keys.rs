//! What `assetpool-verify` does with odd keys and claims from a server: a JWKS
//! entry whose `x` is not a 32-byte Ed25519 key is skipped (the verifier must
//! not panic on it), and a claim of the wrong JSON type is refused, never read
//! as absent (the shape of CVE-2026-25537 in `jsonwebtoken` before 10.3).

use crate::stub::{serve, Signer, STUB_KID};
use assetpool_verify::{Verifier, VerifyError};
use assetpool_wire::Environment;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// A stub serving `jwks`; returns its base URL.
async fn jwks_server(jwks: Value) -> String {
    serve(Router::new().route(
        "/.well-known/jwks.json",
        get(move || std::future::ready(Json(jwks.clone()))),
    ))
    .await
}

fn verifier(base: &str) -> Verifier {
    Verifier::builder(base, Environment::Production)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_jwks_key_of_the_wrong_length_is_skipped_not_fatal() {
    let signer = Signer::new();
    let mut jwks = signer.jwks();
    // 16 bytes, 0 bytes and 64 bytes of `x` under kids of their own.
    for (kid, x) in [
        ("short", "AAAAAAAAAAAAAAAAAAAAAA"),
        ("empty", ""),
        ("long", &"A".repeat(86)),
    ] {
        jwks["keys"]
            .as_array_mut()
            .unwrap()
            .push(Signer::jwk_with_x(kid, x));
    }
    let base = jwks_server(jwks).await;
    let verifier = verifier(&base);
    for kid in ["short", "empty", "long"] {
        let token = signer.sign(kid, &Signer::claims(&base));
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Invalid),
            "kid {kid}"
        );
    }
    // The good key of the same document still verifies.
    let claims = verifier.verify(&signer.token(&base)).await.unwrap();
    assert_eq!(claims.sub, "usr_1");
}

#[tokio::test]
async fn time_claims_of_the_wrong_type_are_refused() {
    let signer = Signer::new();
    let base = jwks_server(signer.jwks()).await;
    let verifier = verifier(&base);
    for claim in ["exp", "nbf", "iat"] {
        let mut claims = Signer::claims(&base);
        let value = claims[claim].as_u64().unwrap();
        // Far in the future as text: a verifier that read it as absent would
        // accept the token for ever (exp) or at once (nbf).
        claims[claim] = json!((value + 10_000_000).to_string());
        let token = signer.sign(STUB_KID, &claims);
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Invalid),
            "{claim} as a string"
        );
        claims.as_object_mut().unwrap().remove(claim);
        let token = signer.sign(STUB_KID, &claims);
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Invalid),
            "{claim} absent"
        );
    }
}
