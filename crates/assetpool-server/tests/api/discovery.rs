//! JWKS, RFC 8414 metadata, OpenAPI, health, readiness and metrics.

use crate::helpers::TestApp;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashSet;

crate::backend_tests! {
    async fn any_jwt_library_verifies_tokens_with_the_jwks(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, token, _) = app.logged_in().await;
        let jwks: Value = app.get_json("/.well-known/jwks.json").await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|jwk| jwk["kid"] == kid.as_str())
            .expect("the token's kid is published");
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
        let metadata: Value = app.get_json("/.well-known/oauth-authorization-server").await;
        let issuer = metadata["issuer"].as_str().unwrap();
        assert_eq!(issuer, app.address);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&["assetpool"]);
        // The test clock stands in 2026-06; the library checks exp against the real clock.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)
            .unwrap()
            .claims;
        for claim in [
            "iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "app", "env",
        ] {
            assert!(claims.get(claim).is_some(), "claim {claim}");
        }
        assert_eq!(claims["env"], "production");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            86400
        );
        assert_eq!(
            metadata["token_endpoint"],
            format!("{}/oauth/token", app.address)
        );
        assert_eq!(
            metadata["jwks_uri"],
            format!("{}/.well-known/jwks.json", app.address)
        );
        assert!(metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("password")));
    }

    async fn openapi_documents_every_endpoint(backend) {
        let app = TestApp::spawn(backend).await;
        let document: Value = app.get_json("/openapi.json").await;
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let paths: HashSet<&str> = document["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for path in [
            "/api/authentication/login",
            "/api/authentication/refresh",
            "/api/authentication/logout",
            "/oauth/token",
            "/oauth/introspect",
            "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server",
            "/v1/resource",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains(path), "{path} missing from OpenAPI");
        }
    }

    async fn health_readiness_and_metrics(backend) {
        let app = TestApp::spawn(backend).await;
        for path in ["/healthz", "/readyz"] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert!(response.headers().contains_key("x-request-id"));
        }
        let (key, token, _) = app.logged_in().await;
        let fetch = || async {
            app.client
                .get(app.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        let storage_reads = |metrics: &str| -> u64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix("assetpool_verify_storage_reads_total "))
                .expect("storage read counter")
                .parse()
                .unwrap()
        };
        // The key's creation is a change of the feed; applied late, it would
        // drop the key from memory once more: apply it before measuring.
        app.state.service.apply_changes().await.unwrap();
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        let before = storage_reads(&fetch().await);
        for _ in 0..5 {
            assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        }
        let _ = app.resource(&key.key, "garbage").await;
        let metrics = fetch().await;
        assert!(
            metrics.contains("assetpool_http_requests_total{route=\"/v1/resource\",status=\"200\"} 6"),
            "{metrics}"
        );
        assert!(metrics.contains("assetpool_auth_failures_total{code=\"invalid_token\"} 1"));
        // Verified requests with a known key read no storage.
        assert_eq!(storage_reads(&metrics), before, "{metrics}");
        assert!(!metrics.contains(&key.key));
        assert!(!metrics.contains(&token));
    }
}

/// Every answer, refusals and unknown paths included, says
/// `X-Content-Type-Options: nosniff`; plain HTTP never says
/// `Strict-Transport-Security` (that is for the TLS listener,
/// `tests/cli/tls.rs`). The OpenAPI document is the same bytes every time.
#[tokio::test]
async fn every_answer_says_nosniff_and_plain_http_no_hsts() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let requests = [
        app.client.get(app.url("/healthz")),
        app.client.get(app.url("/openapi.json")),
        app.client.get(app.url("/.well-known/jwks.json")),
        app.client.get(app.url("/v1/resource")),
        app.client.get(app.url("/no/such/path")),
        app.client.delete(app.url("/healthz")),
        app.post_raw("/api/authentication/login", "text/plain", "x".to_owned()),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{status}"
        );
        assert!(
            !response.headers().contains_key("strict-transport-security"),
            "{status}"
        );
    }
    let fetch = || async {
        let response = app
            .client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "application/json");
        response.bytes().await.unwrap()
    };
    assert_eq!(fetch().await, fetch().await);
}
