//! Revocation reaches the running server within one second, whoever makes it.

use crate::helpers::{assert_error, TestApp, PASSWORD};
use secrecy::SecretString;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(1);

crate::backend_tests! {
    async fn disabling_a_user_revokes_their_tokens(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, refresh_token) = app.logged_in().await;
        app.admin
            .set_user_disabled("alice@example.com", true)
            .await
            .unwrap();
        app.eventually(WITHIN, || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "token_revoked").await;
        assert_error(
            app.refresh(&key.key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
        assert_error(
            app.login(&key.key, "alice@example.com", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
        app.admin
            .set_user_disabled("alice@example.com", false)
            .await
            .unwrap();
        assert_eq!(
            app.login(&key.key, "alice@example.com", PASSWORD)
                .await
                .status(),
            200
        );
    }

    async fn changing_a_password_revokes_sessions(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        app.admin
            .set_password(
                "alice@example.com",
                SecretString::from("a brand new passphrase"),
            )
            .await
            .unwrap();
        app.eventually(WITHIN, || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "token_revoked").await;
        assert_eq!(
            app.login(&key.key, "alice@example.com", "a brand new passphrase")
                .await
                .status(),
            200
        );
    }

    async fn signing_key_rotation_logs_nobody_out(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, old_token, _) = app.logged_in().await;
        let rotated = app.admin.rotate_signing_key().await.unwrap();
        app.eventually(WITHIN, || async {
            let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
            let body: serde_json::Value = response.json().await.unwrap();
            let token = body["accessToken"].as_str().unwrap_or_default().to_owned();
            jsonwebtoken::decode_header(&token)
                .ok()
                .and_then(|header| header.kid)
                .as_deref()
                == Some(rotated.kid.as_str())
        })
        .await;
        assert_eq!(app.resource(&key.key, &old_token).await.status(), 200);
        let jwks: serde_json::Value = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }

    async fn revoking_the_last_key_of_an_application_revokes_its_sessions(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        app.admin.revoke_api_key(&key.id, None).await.unwrap();
        let session_revoked = app
            .state
            .service
            .store()
            .revoked_sessions(assetpool_core::Clock::now(app.clock.as_ref()))
            .await
            .unwrap();
        assert_eq!(session_revoked.len(), 1);
        // A key issued later to the same application does not bring the old session back.
        let later = app
            .create_key_in(
                assetpool_core::Environment::Production,
                Some(&key.application),
            )
            .await;
        app.eventually(WITHIN, || async {
            app.resource(&later.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&later.key, &token).await, 401, "token_revoked").await;
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_revoked").await;
    }

    /// Sessions follow their application through a rotation, but revoking a
    /// key (it may have leaked) ends the sessions opened through it at once,
    /// whichever key of the application presents their tokens; sessions of
    /// the application's other keys go on.
    async fn revoking_a_key_ends_its_sessions_and_rotation_keeps_them(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, refresh_token) = app.logged_in().await;
        let other = app
            .create_key_in(assetpool_core::Environment::Production, Some(&key.application))
            .await;
        let body: serde_json::Value = app
            .login(&other.key, "alice@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        let other_token = body["accessToken"].as_str().unwrap().to_owned();
        let successor = app
            .admin
            .rotate_api_key(&key.id, chrono::Duration::seconds(300))
            .await
            .unwrap();
        let successor_key = successor.secret.expose().to_owned();
        assert_eq!(app.resource(&successor_key, &token).await.status(), 200);

        app.admin.revoke_api_key(&key.id, Some("leaked")).await.unwrap();
        let took = app
            .eventually(WITHIN, || async {
                app.resource(&successor_key, &token).await.status() == 401
            })
            .await;
        eprintln!("the revoked key's session ended after {took:?}");
        assert_error(app.resource(&successor_key, &token).await, 401, "token_revoked").await;
        assert_error(
            app.refresh(&successor_key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
        assert_eq!(app.resource(&successor_key, &other_token).await.status(), 200);
        assert_eq!(app.resource(&other.key, &other_token).await.status(), 200);
    }

    async fn signing_keys_are_encrypted_at_rest_with_a_key_encryption_key(backend) {
        let kek = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
        let app = TestApp::spawn_with(backend, |settings| {
            settings.signing_key_kek = Some(secrecy::SecretBox::from(kek.to_owned()));
        })
        .await;
        let keys = app.state.service.store().signing_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(assetpool_core::KeySealer::is_encrypted(
            &keys[0].sealed_private_key
        ));
        let (key, token, _) = app.logged_in().await;
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        // Without the key-encryption key, an admin refuses to add an unencrypted key.
        let without_kek = assetpool_core::admin::Admin::new(
            app.state.service.store().clone(),
            app.clock.clone(),
            assetpool_core::password::PasswordHasher::new(Default::default()).unwrap(),
            assetpool_core::KeySealer::plain(),
        );
        assert!(without_kek.rotate_signing_key().await.is_err());
        // A server without the key-encryption key refuses to start on this database.
        let mut settings = assetpool_server::ServerSettings::new(app.database_url.clone());
        settings.listen = "127.0.0.1:0".to_owned();
        let error = assetpool_server::Application::build(settings)
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("ASSETPOOL_SIGNING_KEY_KEK"),
            "{error:#}"
        );
    }

    async fn outdated_password_hashes_are_upgraded_at_login(backend) {
        use assetpool_core::password::{Argon2Settings, PasswordHasher};
        let app = TestApp::spawn(backend).await;
        let key = app
            .create_key(assetpool_core::Environment::Production)
            .await;
        let stronger = PasswordHasher::new(Argon2Settings {
            iterations: 3,
            ..Argon2Settings::default()
        })
        .unwrap();
        let admin = assetpool_core::admin::Admin::new(
            app.state.service.store().clone(),
            app.clock.clone(),
            stronger,
            assetpool_core::KeySealer::plain(),
        );
        admin
            .create_user("old@example.com", SecretString::from(PASSWORD), false)
            .await
            .unwrap();
        let store = app.state.service.store().clone();
        let stored = |email: &'static str| {
            let store = store.clone();
            async move {
                store
                    .user_by_email(email)
                    .await
                    .unwrap()
                    .unwrap()
                    .password_hash
            }
        };
        assert!(stored("old@example.com").await.contains("t=3"));
        assert_eq!(
            app.login(&key.key, "old@example.com", PASSWORD)
                .await
                .status(),
            200
        );
        let upgraded = stored("old@example.com").await;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{upgraded}"
        );
        assert_eq!(
            app.login(&key.key, "old@example.com", PASSWORD)
                .await
                .status(),
            200
        );
    }
}
