//! Stand-ins for an assetpool server: a listener on 127.0.0.1:0 and a signing
//! key with its JWKS, for tests of what the SDKs do with a server's answers.

use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Serves `app` on 127.0.0.1:0; returns its base URL.
pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// An Ed25519 key, its JWKS and the tokens it signs for the stub at `issuer`.
pub(crate) struct Signer {
    key: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

/// The `kid` of the stub's key.
pub(crate) const STUB_KID: &str = "stub-key";

impl Signer {
    pub(crate) fn new() -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec();
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
        Signer { key, pkcs8 }
    }

    /// The JWKS entry of this key under `kid`, with `x` as given.
    pub(crate) fn jwk_with_x(kid: &str, x: &str) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x,
        })
    }

    pub(crate) fn jwks(&self) -> Value {
        let x = URL_SAFE_NO_PAD.encode(self.key.public_key().as_ref());
        json!({"keys": [Signer::jwk_with_x(STUB_KID, &x)]})
    }

    /// The claims of a valid token for `issuer`, lasting ten minutes.
    pub(crate) fn claims(issuer: &str) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": issuer, "aud": "assetpool", "sub": "usr_1", "iat": now, "nbf": now,
            "exp": now + 600, "jti": "jti_1", "sid": "ses_1", "app": "app_1",
            "env": "production", "client_id": "app_1", "email": "alice@example.com",
        })
    }

    pub(crate) fn token(&self, issuer: &str) -> String {
        self.sign(STUB_KID, &Signer::claims(issuer))
    }

    /// Signs any claims under any `kid`.
    pub(crate) fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}
