//! Alerts on suspicious use: one scripted scenario per rule, each stored
//! once per episode.

use crate::backend_tests;
use crate::helpers::{TestApp, PASSWORD};
use assetpool_core::admin::CreateApiKey;
use assetpool_core::alerts::{AlertRule, Trigger};
use assetpool_core::ids::KeyId;
use assetpool_core::limits::KeyLimits;
use assetpool_core::store::{UsageBatch, UsageDelta, UsageResolution};
use assetpool_core::{Clock, Environment};
use assetpool_wire::AlertResponse;
use chrono::Duration;
use std::time::Duration as StdDuration;

async fn alerts_of(app: &TestApp, rule: &str) -> Vec<AlertResponse> {
    app.admin
        .list_alerts(None, None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|alert| alert.rule == rule)
        .collect()
}

/// Waits until exactly one alert of `rule` exists and returns it.
async fn one_alert(app: &TestApp, rule: &str) -> AlertResponse {
    app.eventually(StdDuration::from_secs(5), || async {
        !alerts_of(app, rule).await.is_empty()
    })
    .await;
    let alerts = alerts_of(app, rule).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    alerts.into_iter().next().unwrap()
}

async fn key_expiring_in(app: &TestApp, lifetime: Duration) -> KeyId {
    app.admin
        .create_api_key(CreateApiKey {
            name: "expiring".into(),
            environment: Environment::Production,
            application_id: None,
            expires_in: Some(lifetime),
            limits: KeyLimits::default(),
            metadata: None,
            owner: None,
            allowed_networks: None,
            scopes: None,
        })
        .await
        .unwrap()
        .record
        .id
}

backend_tests! {
    async fn a_revoked_key_presented_raises_one_alert(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        app.admin.revoke_api_key(&key.id, Some("compromised")).await.unwrap();
        app.eventually(StdDuration::from_secs(2), || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        for _ in 0..5 {
            assert_eq!(app.resource(&key.key, &token).await.status(), 401);
        }
        let alert = one_alert(&app, "revoked_key_used").await;
        assert_eq!(alert.api_key.as_deref(), Some(key.id.as_str()));
        assert_eq!(alert.evidence["clientAddress"], "127.0.0.1");
        assert!(alert.evidence["revokedAt"].is_string());
        // The secret never appears in the evidence.
        assert!(!alert.evidence.to_string().contains(&key.key));
    }

    async fn an_expired_key_presented_raises_an_alert(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app
            .admin
            .create_api_key(CreateApiKey {
                name: "short".into(),
                environment: Environment::Production,
                application_id: None,
                expires_in: Some(Duration::minutes(1)),
                limits: KeyLimits::default(),
                metadata: None,
                owner: None,
                allowed_networks: None,
                scopes: None,
            })
            .await
            .unwrap();
        app.clock.advance(Duration::minutes(2));
        let response = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", key.secret.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let alert = one_alert(&app, "expired_key_used").await;
        assert_eq!(alert.api_key.as_deref(), Some(key.record.id.as_str()));
    }

    async fn a_key_of_another_environment_raises_an_alert(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Development).await;
        let response = app.login(&key.key, "alice@example.com", PASSWORD).await;
        assert_eq!(response.status(), 401);
        let alert = one_alert(&app, "wrong_environment").await;
        assert_eq!(alert.evidence["keyEnvironment"], "development");
        assert_eq!(alert.evidence["serverEnvironment"], "production");
    }

    async fn a_reused_refresh_token_raises_an_alert(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, _, refresh_token) = app.logged_in().await;
        assert_eq!(app.refresh(&key.key, &refresh_token).await.status(), 200);
        assert_eq!(app.refresh(&key.key, &refresh_token).await.status(), 401);
        let alert = one_alert(&app, "refresh_token_reused").await;
        assert_eq!(alert.api_key.as_deref(), Some(key.id.as_str()));
        assert!(alert.evidence["session"].is_string());
    }

    async fn failed_logins_on_one_account_raise_an_alert(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.alerts.failed_logins_per_account = 3;
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        for _ in 0..4 {
            let response = app.login(&key.key, "alice@example.com", "not the password!").await;
            assert_eq!(response.status(), 401);
        }
        let alert = one_alert(&app, "failed_logins").await;
        assert_eq!(alert.account.as_deref(), Some("alice@example.com"));
        assert_eq!(alert.subject, "account:alice@example.com");
    }

    async fn failed_logins_through_one_key_raise_an_alert(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.alerts.failed_logins_per_key = 3;
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        for index in 0..3 {
            let response = app
                .login(&key.key, &format!("user{index}@example.com"), "not the password!")
                .await;
            assert_eq!(response.status(), 401);
        }
        // The per-key rule is evaluated from the usage counters: after a
        // flush (here, or the background one, whichever comes first).
        app.state.service.flush_usage().await.unwrap();
        app.eventually(StdDuration::from_secs(5), || async {
            alerts_of(&app, "failed_logins")
                .await
                .iter()
                .any(|alert| alert.api_key.as_deref() == Some(key.id.as_str()))
        })
        .await;
    }

    async fn a_new_network_raises_an_alert_but_the_first_does_not(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .await;
        let (key, token, _) = app.logged_in().await;
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        app.state.service.flush_usage().await.unwrap();
        app.clock.advance(Duration::minutes(1));
        let from_elsewhere = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(from_elsewhere.status(), 200);
        app.state.service.flush_usage().await.unwrap();
        let alert = one_alert(&app, "new_network").await;
        assert_eq!(alert.evidence["network"], "203.0.113.0/24");
        assert_eq!(alert.evidence["clientAddress"], "203.0.113.9");
        // The same network again is not news.
        app.state.service.flush_usage().await.unwrap();
        assert_eq!(alerts_of(&app, "new_network").await.len(), 1);
    }

    async fn a_rate_far_above_the_baseline_raises_an_alert(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.alerts.rate_spike_min_requests = 30;
            settings.alerts.rate_spike_factor = 10;
        })
        .await;
        let (key, token, _) = app.logged_in().await;
        // History: 2 requests an hour over the last five hours.
        let now = app.clock.now();
        let history = UsageBatch {
            counts: (1..=5)
                .map(|hours_ago| UsageDelta {
                    key_id: key.id.clone(),
                    minute: UsageResolution::Minute.bucket_start(now - Duration::hours(hours_ago)),
                    outcome: "2xx".into(),
                    count: 2,
                })
                .collect(),
            ..UsageBatch::default()
        };
        app.state.service.store().add_key_usage(&history).await.unwrap();
        for _ in 0..25 {
            assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        }
        app.state.service.flush_usage().await.unwrap();
        assert!(alerts_of(&app, "rate_spike").await.is_empty());
        for _ in 0..10 {
            assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        }
        app.state.service.flush_usage().await.unwrap();
        let alert = one_alert(&app, "rate_spike").await;
        assert_eq!(alert.evidence["hourlyMedian"], 2);
        assert!(alert.evidence["requestsThisHour"].as_u64().unwrap() > 20);
    }

    async fn a_key_nearing_expiry_raises_one_alert_per_stage(backend) {
        let app = TestApp::spawn(backend).await;
        let key_id = key_expiring_in(&app, Duration::days(10)).await;
        let _far = key_expiring_in(&app, Duration::days(60)).await;
        app.state.service.housekeeping().await.unwrap();
        app.state.service.housekeeping().await.unwrap();
        let first = one_alert(&app, "key_expiring").await;
        assert_eq!(first.api_key.as_deref(), Some(key_id.as_str()));
        assert_eq!(first.evidence["warning"], "14d");
        app.clock.advance(Duration::days(9) + Duration::hours(12));
        app.state.service.housekeeping().await.unwrap();
        app.eventually(StdDuration::from_secs(5), || async {
            alerts_of(&app, "key_expiring").await.len() == 2
        })
        .await;
        app.state.service.housekeeping().await.unwrap();
        let alerts = alerts_of(&app, "key_expiring").await;
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].evidence["warning"], "1d");
    }

    async fn repeated_triggers_update_one_alert_until_acknowledged(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        let service = &app.state.service;
        let store = service.store().as_ref();
        let trigger = || Trigger::for_key(
            AlertRule::RevokedKeyUsed,
            &key.id,
            serde_json::json!({"n": 1}),
            app.clock.now(),
        );
        let first = service.alerts().raise(store, trigger()).await.unwrap();
        assert!(first.created);
        app.clock.advance(Duration::minutes(30));
        let second = service.alerts().raise(store, trigger()).await.unwrap();
        assert!(!second.created);
        assert_eq!(second.alert.id, first.alert.id);
        assert_eq!(second.alert.occurrences, 2);
        app.admin.ack_alert(&first.alert.id).await.unwrap();
        let third = service.alerts().raise(store, trigger()).await.unwrap();
        assert!(third.created);
        // After the episode window, a new alert too.
        app.clock.advance(Duration::hours(2));
        let fourth = service.alerts().raise(store, trigger()).await.unwrap();
        assert!(fourth.created);
        assert_eq!(alerts_of(&app, "revoked_key_used").await.len(), 3);
    }
}
