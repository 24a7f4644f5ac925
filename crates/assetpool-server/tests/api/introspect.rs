//! `POST /oauth/introspect` (RFC 7662): API key required, `{"active": false}`
//! for any token a protected request would refuse.

use crate::helpers::{TestApp, PASSWORD};
use assetpool_core::Environment;
use reqwest::Response;
use serde_json::Value;
use std::time::Duration;

const FORM: &str = "application/x-www-form-urlencoded";

async fn introspect(app: &TestApp, key: Option<&str>, token: &str) -> Response {
    let form = serde_urlencoded::to_string([("token", token)]).unwrap();
    let mut request = app.post_raw("/oauth/introspect", FORM, form);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

/// The answer for `token`, checking the headers every answer carries.
async fn answer(app: &TestApp, key: &str, token: &str) -> Value {
    let response = introspect(app, Some(key), token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

fn inactive() -> Value {
    serde_json::json!({"active": false})
}

crate::backend_tests! {
    async fn a_live_token_is_active_with_its_claims(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let body = answer(&app, &key.key, &token).await;
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["iss"], app.address.as_str());
        assert_eq!(body["aud"], "assetpool");
        assert_eq!(body["app"], key.application.as_str());
        assert_eq!(body["client_id"], key.application.as_str());
        assert_eq!(body["env"], "production");
        for claim in ["sub", "sid", "jti"] {
            assert!(body[claim].as_str().is_some_and(|value| !value.is_empty()), "{claim}");
        }
        assert_eq!(body["exp"].as_i64().unwrap() - body["iat"].as_i64().unwrap(), 86400);
        let metadata: Value = app
            .client
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            metadata["introspection_endpoint"],
            format!("{}/oauth/introspect", app.address)
        );
    }

    async fn invalid_expired_revoked_and_foreign_tokens_are_inactive(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        assert_eq!(answer(&app, &key.key, "garbage").await, inactive());
        let mut tampered = token.clone();
        tampered.pop();
        assert_eq!(answer(&app, &key.key, &tampered).await, inactive());

        // Another application's key does not learn about this application's tokens.
        let other = app.create_key(Environment::Production).await;
        assert_eq!(answer(&app, &other.key, &token).await, inactive());

        // Revoked by logout.
        let second = app.login(&key.key, "alice@example.com", PASSWORD).await;
        let second: Value = second.json().await.unwrap();
        let second = second["accessToken"].as_str().unwrap().to_owned();
        let response = app
            .client
            .post(app.url("/api/authentication/logout"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &second)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        app.eventually(Duration::from_secs(1), || async {
            answer(&app, &key.key, &second).await == inactive()
        })
        .await;

        // Expired.
        assert_eq!(answer(&app, &key.key, &token).await["active"], true);
        app.clock.advance(chrono::Duration::seconds(86_401));
        assert_eq!(answer(&app, &key.key, &token).await, inactive());
    }

    async fn the_caller_needs_a_good_api_key_and_a_token_parameter(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        for presented in [None, Some("apk_prod_0000"), Some("not-a-key")] {
            let response = introspect(&app, presented, &token).await;
            assert_eq!(response.status(), 401);
            assert_eq!(response.headers()["cache-control"], "no-store");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client", "{body}");
        }
        let response = app
            .post_raw("/oauth/introspect", FORM, "token_type_hint=access_token")
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
        let response = app
            .post_raw("/oauth/introspect", "application/json", "{}")
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415);
        // A token in the query string is never read.
        let response = app
            .client
            .post(app.url(&format!("/oauth/introspect?token={token}")))
            .header("x-api-key", &key.key)
            .header("content-type", FORM)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
}
