//! `POST /api/authentication/login`.

use crate::helpers::{assert_error, TestApp, PASSWORD};
use assetpool_core::Environment;
use serde_json::{json, Value};

crate::backend_tests! {
    async fn login_returns_the_seed_token_shape(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        assert!(response.headers().contains_key("x-request-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["expiresIn"], 86400);
        assert_eq!(body["tokenType"], "Bearer");
        assert!(body["accessToken"].as_str().unwrap().split('.').count() == 3);
        assert!(body["refreshToken"].as_str().unwrap().starts_with("apr_"));
    }

    async fn usernames_match_case_insensitively_and_passwords_are_normalised(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.admin
            .create_user(
                "Bob@Example.com",
                secrecy::SecretString::from("caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e"),
                false,
            )
            .await
            .unwrap();
        let decomposed = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
        let response = app.login(&key.key, "BOB@example.COM", decomposed).await;
        assert_eq!(response.status(), 200);
    }

    async fn wrong_password_unknown_user_and_disabled_user_look_the_same(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        app.create_user("carol@example.com").await;
        app.admin
            .set_user_disabled("carol@example.com", true)
            .await
            .unwrap();
        let wrong = assert_error(
            app.login(&key.key, "alice@example.com", "not the password!")
                .await,
            401,
            "invalid_credentials",
        )
        .await;
        let unknown = assert_error(
            app.login(&key.key, "nobody@example.com", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
        let disabled = assert_error(
            app.login(&key.key, "carol@example.com", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
        assert_eq!(wrong, unknown);
        assert_eq!(wrong, disabled);
    }

    async fn the_api_key_is_checked_before_the_password(backend) {
        let app = TestApp::spawn(backend).await;
        app.create_user("alice@example.com").await;
        let response = app
            .client
            .post(app.url("/api/authentication/login"))
            .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "missing_api_key").await;
        let bad = "apk_prod_00000000000000000000000000000000000000";
        assert_error(
            app.login(bad, "alice@example.com", PASSWORD).await,
            401,
            "invalid_api_key",
        )
        .await;
        let development = app.create_key(Environment::Development).await;
        assert_error(
            app.login(&development.key, "alice@example.com", PASSWORD)
                .await,
            401,
            "wrong_environment",
        )
        .await;
    }

    async fn long_passwords_are_refused_before_hashing(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        let long = "x".repeat(1025);
        assert_error(
            app.login(&key.key, "alice@example.com", &long).await,
            400,
            "invalid_request",
        )
        .await;
    }

    async fn repeated_failures_are_throttled_even_with_the_right_password(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        for _ in 0..5 {
            assert_error(
                app.login(&key.key, "alice@example.com", "wrong password!!")
                    .await,
                401,
                "invalid_credentials",
            )
            .await;
        }
        let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
        assert_error(response, 429, "too_many_attempts").await;
        // Another account from the same address is not throttled by that pair.
        app.create_user("bob@example.com").await;
        assert_eq!(
            app.login(&key.key, "bob@example.com", PASSWORD)
                .await
                .status(),
            200
        );
    }

    async fn a_saturated_hashing_pool_answers_overloaded(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.hashing.workers = 1;
            settings.hashing.queue = 0;
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let responses = app.concurrent_logins(&key.key, 12).await;
        let mut overloaded = 0;
        for response in responses {
            if response.status() == 503 {
                assert!(response.headers().contains_key("retry-after"));
                assert_error(response, 503, "overloaded").await;
                overloaded += 1;
            } else {
                assert_eq!(response.status(), 401);
            }
        }
        assert!(overloaded > 0, "some logins must be refused at once");
    }
}

mod quiet_window {
    use super::*;

    crate::backend_tests! {
        /// Successful logins are not failures: they never keep a counter's window
        /// open. An address with steady successful logins forgets its typos after
        /// a quiet window like any other.
        async fn successful_logins_do_not_keep_failure_counters_alive(backend) {
            let app = TestApp::spawn_with(backend, |settings| {
                settings.throttle.per_address = 3;
            })
            .await;
            let key = app.create_key(Environment::Production).await;
            app.create_user("alice@example.com").await;
            let typo = |account: &'static str| app.login(&key.key, account, "not the password!");
            assert_eq!(typo("x@example.com").await.status(), 401);
            assert_eq!(typo("y@example.com").await.status(), 401);
            // Twenty minutes of successful logins from the same address, every
            // four minutes.
            for _ in 0..5 {
                app.clock.advance(chrono::Duration::minutes(4));
                let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
                assert_eq!(response.status(), 200);
            }
            // The two typos are 20 minutes old: the window (15 minutes) is over.
            assert_eq!(typo("x@example.com").await.status(), 401);
            assert_eq!(typo("y@example.com").await.status(), 401);
            assert_eq!(typo("z@example.com").await.status(), 401);
            // Three fresh failures: now the address is delayed.
            assert_error(typo("w@example.com").await, 429, "too_many_attempts").await;
        }
    }
}
