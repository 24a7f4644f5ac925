//! Request bodies: size, content type, malformed JSON, duplicate keys, unknown fields.

use crate::helpers::{assert_error, TestApp, PASSWORD};
use assetpool_core::Environment;

const LOGIN: &str = "/api/authentication/login";

crate::backend_tests! {
    async fn body_limits_and_content_types(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        let large = format!(
            r#"{{"username": "a@example.com", "password": "x", "padding": "{}"}}"#,
            "y".repeat(17 * 1024)
        );
        let response = app
            .post_raw(LOGIN, "application/json", large)
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "payload_too_large").await;
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let response = app
                .post_raw(LOGIN, content_type, r#"{"username":"a","password":"b"}"#)
                .header("x-api-key", &key.key)
                .send()
                .await
                .unwrap();
            assert_error(response, 415, "unsupported_media_type").await;
        }
        let response = app
            .client
            .post(app.url(LOGIN))
            .header("x-api-key", &key.key)
            .body(r#"{"username":"a","password":"b"}"#)
            .send()
            .await
            .unwrap();
        assert_error(response, 415, "unsupported_media_type").await;
    }

    async fn malformed_json_is_an_invalid_request_that_echoes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        for body in [
            "{",
            "not json",
            r#"{"username": "a@example.com"}"#,
            r#"{"username": "a@example.com", "password": 12345}"#,
            r#"{"username": "a@example.com", "password": "secret-value-1", "password": "secret-value-2"}"#,
            r#"{"username": "a@example.com", "password": "secret-value-1"} trailing"#,
            r#"["a@example.com", "secret-value-1"]"#,
        ] {
            let response = app
                .post_raw(LOGIN, "application/json; charset=utf-8", body)
                .header("x-api-key", &key.key)
                .send()
                .await
                .unwrap();
            let error = assert_error(response, 400, "invalid_request").await;
            let text = error.to_string();
            assert!(!text.contains("secret-value"), "{text}");
            assert!(!text.contains("a@example.com"), "{text}");
        }
    }

    async fn unknown_fields_are_ignored(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let body = serde_json::json!({
            "username": "alice@example.com",
            "password": PASSWORD,
            "grant_type": "password",
            "client_id": "whatever",
        });
        let response = app
            .post_raw(LOGIN, "application/json", body.to_string())
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn unknown_routes_and_methods_answer_json_with_a_request_id(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app.client.get(app.url("/nowhere")).send().await.unwrap();
        assert_error(response, 404, "not_found").await;
        let response = app.client.get(app.url(LOGIN)).send().await.unwrap();
        assert_error(response, 405, "method_not_allowed").await;
    }
}
