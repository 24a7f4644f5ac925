//! Refresh-token rotation, reuse detection and logout.

use crate::helpers::{assert_error, TestApp};
use assetpool_core::Environment;
use serde_json::Value;

crate::backend_tests! {
    async fn refresh_rotates_the_refresh_token(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, _, refresh_token) = app.logged_in().await;
        let response = app.refresh(&key.key, &refresh_token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        let next_refresh = body["refreshToken"].as_str().unwrap();
        assert_ne!(next_refresh, refresh_token);
        assert_eq!(body["expiresIn"], 86400);
        let access_token = body["accessToken"].as_str().unwrap();
        assert_eq!(app.resource(&key.key, access_token).await.status(), 200);
        assert_eq!(app.refresh(&key.key, next_refresh).await.status(), 200);
    }

    async fn reusing_a_spent_refresh_token_revokes_the_session(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, first_access, refresh_token) = app.logged_in().await;
        let body: Value = app
            .refresh(&key.key, &refresh_token)
            .await
            .json()
            .await
            .unwrap();
        let second_access = body["accessToken"].as_str().unwrap().to_owned();
        let next_refresh = body["refreshToken"].as_str().unwrap().to_owned();
        assert_error(
            app.refresh(&key.key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
        for token in [&first_access, &second_access] {
            let response = app.resource(&key.key, token).await;
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="assetpool", error="invalid_token""#
            );
            assert_error(response, 401, "token_revoked").await;
        }
        assert_error(
            app.refresh(&key.key, &next_refresh).await,
            401,
            "invalid_refresh_token",
        )
        .await;
    }

    async fn refresh_needs_a_key_of_the_same_application(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, _, refresh_token) = app.logged_in().await;
        let other = app.create_key(Environment::Production).await;
        assert_error(
            app.refresh(&other.key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
        let sibling = app
            .create_key_in(Environment::Production, Some(&key.application))
            .await;
        assert_eq!(
            app.refresh(&sibling.key, &refresh_token).await.status(),
            200
        );
    }

    async fn unknown_and_malformed_refresh_tokens_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, _, _) = app.logged_in().await;
        for token in [
            "apr_0000000000000000000000000000000000000000000",
            "nonsense",
            "",
        ] {
            assert_error(
                app.refresh(&key.key, token).await,
                401,
                "invalid_refresh_token",
            )
            .await;
        }
    }

    async fn expired_refresh_tokens_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, _, refresh_token) = app.logged_in().await;
        app.clock.advance(chrono::Duration::days(31));
        assert_error(
            app.refresh(&key.key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
    }

    async fn logout_ends_access_and_refresh(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, access_token, refresh_token) = app.logged_in().await;
        let response = app
            .client
            .post(app.url("/api/authentication/logout"))
            .header("x-api-key", &key.key)
            .header("authorization", format!("Bearer {access_token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert_error(
            app.resource(&key.key, &access_token).await,
            401,
            "token_revoked",
        )
        .await;
        assert_error(
            app.refresh(&key.key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
    }

    async fn logout_needs_key_and_token(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, _, _) = app.logged_in().await;
        let response = app
            .client
            .post(app.url("/api/authentication/logout"))
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "missing_token").await;
    }
}
