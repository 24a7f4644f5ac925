//! `GET /v1/resource`: the check order and every error code of step 1 and 2.

use crate::helpers::{assert_error, TestApp};
use assetpool_core::admin::CreateApiKey;
use assetpool_core::Environment;
use serde_json::Value;

crate::backend_tests! {
    async fn valid_key_and_token_reach_the_resource(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        for header in ["x-api-token", "authorization"] {
            let value = if header == "authorization" {
                format!("Bearer {token}")
            } else {
                token.clone()
            };
            let response = app
                .client
                .get(app.url("/v1/resource"))
                .header("x-api-key", &key.key)
                .header(header, value)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["user"]["email"], "alice@example.com");
            assert!(body["user"]["id"].as_str().unwrap().starts_with("usr_"));
            assert_eq!(body["apiKey"]["id"], key.id.as_str());
            assert_eq!(body["apiKey"]["environment"], "production");
            assert_eq!(body["apiKey"]["application"], key.application.as_str());
            assert_eq!(body["apiKey"]["name"], "test key");
            assert_eq!(body["tokenExpiresAt"], "2026-06-02T12:00:00Z");
        }
    }

    async fn api_key_errors_come_first(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let response = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "missing_api_key").await;
        let mut bad_checksum = key.key.clone().into_bytes();
        let last = bad_checksum.len() - 1;
        bad_checksum[last] = if bad_checksum[last] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let bad_checksum = String::from_utf8(bad_checksum).unwrap();
        let unknown = assetpool_core::ApiKeySecret::generate(Environment::Production);
        for presented in ["nonsense", bad_checksum.as_str(), unknown.expose()] {
            assert_error(
                app.resource(presented, &token).await,
                401,
                "invalid_api_key",
            )
            .await;
        }
        // The key check comes before the token check.
        assert_error(
            app.resource("nonsense", "garbage").await,
            401,
            "invalid_api_key",
        )
        .await;
    }

    async fn revoked_expired_and_foreign_environment_keys(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let sibling = app
            .create_key_in(Environment::Production, Some(&key.application))
            .await;
        app.admin
            .revoke_api_key(&key.id, Some("leaked"))
            .await
            .unwrap();
        app.eventually(std::time::Duration::from_secs(1), || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_revoked").await;
        // The session opened through the revoked key ended with it, also for
        // another key of the same application (within the same second: the
        // key and its sessions are separate changes of the feed); a session
        // of that key works.
        app.eventually(std::time::Duration::from_secs(1), || async {
            app.resource(&sibling.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&sibling.key, &token).await, 401, "token_revoked").await;
        let body: serde_json::Value = app
            .login(&sibling.key, "alice@example.com", crate::helpers::PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        let token = body["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(app.resource(&sibling.key, &token).await.status(), 200);

        let expiring = app
            .admin
            .create_api_key(CreateApiKey {
                name: "short".into(),
                environment: Environment::Production,
                application_id: Some(key.application.clone()),
                expires_in: Some(chrono::Duration::seconds(60)),
                limits: Default::default(),
                metadata: None,
                owner: None,
                allowed_networks: None,
                scopes: None,
            })
            .await
            .unwrap();
        let expiring_key = expiring.secret.expose().to_owned();
        assert_eq!(app.resource(&expiring_key, &token).await.status(), 200);
        app.clock.advance(chrono::Duration::seconds(61));
        assert_error(
            app.resource(&expiring_key, &token).await,
            401,
            "api_key_expired",
        )
        .await;

        let staging = app.create_key(Environment::Staging).await;
        assert_error(
            app.resource(&staging.key, &token).await,
            401,
            "wrong_environment",
        )
        .await;
    }

    async fn rotation_grace_then_expiry(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let successor = app
            .admin
            .rotate_api_key(&key.id, chrono::Duration::seconds(300))
            .await
            .unwrap();
        let new_key = successor.secret.expose().to_owned();
        assert_eq!(successor.record.application_id, key.application);
        // Both work during the grace period; the token follows the application.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        assert_eq!(app.resource(&new_key, &token).await.status(), 200);
        app.clock.advance(chrono::Duration::seconds(301));
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_expired").await;
        assert_eq!(app.resource(&new_key, &token).await.status(), 200);
    }

    async fn rotation_with_no_grace_rejects_the_old_key_at_once(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        app.admin
            .rotate_api_key(&key.id, chrono::Duration::zero())
            .await
            .unwrap();
        app.eventually(std::time::Duration::from_secs(1), || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_expired").await;
    }

    async fn token_errors_carry_www_authenticate(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let response = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="assetpool""#
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_error(response, 401, "missing_token").await;

        for garbage in ["garbage", "a.b.c", &format!("{token}x")] {
            let response = app.resource(&key.key, garbage).await;
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="assetpool", error="invalid_token""#
            );
            assert_error(response, 401, "invalid_token").await;
        }

        app.clock.advance(chrono::Duration::seconds(86_400));
        let response = app.resource(&key.key, &token).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="assetpool", error="invalid_token""#
        );
        assert_error(response, 401, "token_expired").await;
    }

    async fn a_token_of_another_application_is_invalid(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, token, _) = app.logged_in().await;
        let other = app.create_key(Environment::Production).await;
        assert_error(app.resource(&other.key, &token).await, 401, "invalid_token").await;
    }

    async fn a_token_of_another_server_is_invalid(backend) {
        let first = TestApp::spawn(backend).await;
        let (_, token, _) = first.logged_in().await;
        let second = TestApp::spawn(backend).await;
        let key = second.create_key(Environment::Production).await;
        assert_error(
            second.resource(&key.key, &token).await,
            401,
            "invalid_token",
        )
        .await;
    }

    async fn repeated_or_conflicting_credentials_are_invalid_requests(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let twice_key = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_error(twice_key, 400, "invalid_request").await;
        let twice_token = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_error(twice_token, 400, "invalid_request").await;
        let conflicting = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("authorization", "Bearer something-else")
            .send()
            .await
            .unwrap();
        assert_error(conflicting, 400, "invalid_request").await;
        let same = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(same.status(), 200);
    }

    async fn credentials_in_the_query_string_are_ignored(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let response = app
            .client
            .get(app.url(&format!(
                "/v1/resource?x-api-key={}&x-api-token={token}&access_token={token}",
                key.key
            )))
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "missing_api_key").await;
        let response = app
            .client
            .get(app.url(&format!("/v1/resource?access_token={token}")))
            .header("x-api-key", &key.key)
            .header("cookie", format!("token={token}; x-api-token={token}"))
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "missing_token").await;
    }
}
