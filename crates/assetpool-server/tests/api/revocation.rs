//! Revocation reaches the running server within one second, whoever makes it.

use crate::helpers::{assert_error, TestApp, PASSWORD};
use secrecy::SecretString;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn disabling_a_user_revokes_their_tokens() {
    let app = TestApp::spawn().await;
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

#[tokio::test]
async fn changing_a_password_revokes_sessions() {
    let app = TestApp::spawn().await;
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

#[tokio::test]
async fn signing_key_rotation_logs_nobody_out() {
    let app = TestApp::spawn().await;
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

#[tokio::test]
async fn revoking_the_last_key_of_an_application_revokes_its_sessions() {
    let app = TestApp::spawn().await;
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
