//! `POST /oauth/token` (RFC 6749 sections 4.3, 5.1, 5.2 and 6).

use crate::helpers::{TestApp, PASSWORD};
use assetpool_core::Environment;
use reqwest::Response;
use serde_json::Value;

const FORM: &str = "application/x-www-form-urlencoded";

async fn token_request(app: &TestApp, key: Option<&str>, form: &str) -> Response {
    let mut request = app.post_raw("/oauth/token", FORM, form.to_owned());
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

async fn assert_oauth_error(response: Response, status: u16, error: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
}

fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)]).unwrap()[2..].to_owned()
}

crate::backend_tests! {
    async fn password_and_refresh_grants(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let form = format!(
            "grant_type=password&username=alice%40example.com&password={}&client_id=ignored",
            encode(PASSWORD)
        );
        let response = token_request(&app, Some(&key.key), &form).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 86400);
        let access_token = body["access_token"].as_str().unwrap();
        assert_eq!(app.resource(&key.key, access_token).await.status(), 200);
        let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

        let form = format!("grant_type=refresh_token&refresh_token={refresh_token}");
        let response = app
            .post_raw("/oauth/token", FORM, form.clone())
            .header("x-api-key", &key.key)
            // A stock client sending HTTP Basic with an empty secret is not refused.
            .header("authorization", "Basic Y2xpZW50Og==")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert!(body["refresh_token"].as_str().unwrap() != refresh_token);

        // Reuse: invalid_grant, and the session is revoked.
        assert_oauth_error(
            token_request(&app, Some(&key.key), &form).await,
            400,
            "invalid_grant",
        )
        .await;
        let access_token = body["access_token"].as_str().unwrap();
        assert_eq!(app.resource(&key.key, access_token).await.status(), 401);
    }

    async fn bad_credentials_are_invalid_grant(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let form = "grant_type=password&username=alice%40example.com&password=wrong-password-here";
        assert_oauth_error(
            token_request(&app, Some(&key.key), form).await,
            400,
            "invalid_grant",
        )
        .await;
        let form = "grant_type=refresh_token&refresh_token=apr_unknown";
        assert_oauth_error(
            token_request(&app, Some(&key.key), form).await,
            400,
            "invalid_grant",
        )
        .await;
    }

    async fn missing_or_bad_api_key_is_invalid_client(backend) {
        let app = TestApp::spawn(backend).await;
        let form = format!(
            "grant_type=password&username=alice%40example.com&password={}",
            encode(PASSWORD)
        );
        assert_oauth_error(
            token_request(&app, None, &form).await,
            401,
            "invalid_client",
        )
        .await;
        assert_oauth_error(
            token_request(&app, Some("apk_prod_nonsense"), &form).await,
            401,
            "invalid_client",
        )
        .await;
    }

    async fn malformed_requests(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        for (form, error) in [
            ("grant_type=client_credentials", "unsupported_grant_type"),
            (
                "grant_type=authorization_code&code=x",
                "unsupported_grant_type",
            ),
            ("username=a&password=b", "invalid_request"),
            ("grant_type=password&password=b", "invalid_request"),
            ("grant_type=password&username=a", "invalid_request"),
            ("grant_type=refresh_token", "invalid_request"),
            (
                "grant_type=password&grant_type=password&username=a&password=b",
                "invalid_request",
            ),
        ] {
            assert_oauth_error(token_request(&app, Some(&key.key), form).await, 400, error).await;
        }
        let response = app
            .post_raw("/oauth/token", "application/json", "{}")
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, 415, "invalid_request").await;
    }
}
