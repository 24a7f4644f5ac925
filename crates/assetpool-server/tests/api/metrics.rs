//! `/metrics`: the Argon2 pool, the caches, storage latency and the alert
//! outbox backlog, with bounded labels and no identifiers.

use crate::helpers::{assert_error, TestApp, PASSWORD};
use assetpool_core::Environment;

/// The value of the sample named exactly `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|value| value.trim().parse::<f64>().expect("a number"))
    })
}

fn value(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

async fn fetch(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

crate::backend_tests! {
    async fn metrics_show_the_pool_caches_storage_and_outbox(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, refresh) = app.logged_in().await;
        for _ in 0..5 {
            assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        }
        let metrics = fetch(&app).await;

        // The Argon2 pool.
        assert_eq!(value(&metrics, "assetpool_password_hashing_queued"), 0.0);
        assert_eq!(value(&metrics, "assetpool_password_hashing_in_flight"), 0.0);
        assert_eq!(value(&metrics, "assetpool_password_hashing_rejected_total"), 0.0);

        // The caches: the key was read from storage once, then found in memory.
        let key_hits = value(
            &metrics,
            "assetpool_cache_requests_total{cache=\"api_key\",result=\"hit\"}",
        );
        let key_misses = value(
            &metrics,
            "assetpool_cache_requests_total{cache=\"api_key\",result=\"miss\"}",
        );
        assert!(key_hits >= 4.0, "{metrics}");
        assert!(key_misses >= 1.0, "{metrics}");
        // No since-start ratio: rates over a window come from the counters.
        assert!(!metrics.contains("hit_ratio"), "{metrics}");
        let token_hits = value(
            &metrics,
            "assetpool_cache_requests_total{cache=\"token\",result=\"hit\"}",
        );
        assert!(token_hits >= 4.0, "{metrics}");

        // Storage latency, per operation.
        let reads = value(
            &metrics,
            "assetpool_storage_operation_duration_seconds_count{operation=\"api_key_by_hash\"}",
        );
        assert!(reads >= 1.0, "{metrics}");
        let infinite = metrics
            .lines()
            .find(|line| {
                line.starts_with("assetpool_storage_operation_duration_seconds_bucket{")
                    && line.contains("operation=\"api_key_by_hash\"")
                    && line.contains("le=\"+Inf\"")
            })
            .expect("the +Inf bucket");
        assert!(infinite.ends_with(&format!(" {reads}")), "{infinite}");
        let buckets = metrics
            .lines()
            .filter(|line| {
                line.starts_with("assetpool_storage_operation_duration_seconds_bucket{")
                    && line.contains("operation=\"api_key_by_hash\"")
            })
            .count();
        assert_eq!(buckets, 15, "14 bounds and +Inf");
        assert!(value(
            &metrics,
            "assetpool_storage_operation_duration_seconds_count{operation=\"open_session\"}",
        ) >= 1.0);
        assert_eq!(
            value(&metrics, "assetpool_storage_errors_total{operation=\"api_key_by_hash\"}"),
            0.0
        );
        // The follower waits on the change feed: not timed.
        assert!(!metrics.contains("wait_for_changes"), "{metrics}");

        // The alert outbox backlog, read from storage at scrape time.
        assert_eq!(value(&metrics, "assetpool_alert_outbox_backlog"), 0.0);
        assert!(value(
            &metrics,
            "assetpool_storage_operation_duration_seconds_count{operation=\"webhook_backlog\"}",
        ) >= 1.0);
        assert_eq!(
            value(&metrics, "assetpool_storage_errors_total{operation=\"webhook_backlog\"}"),
            0.0,
            "{metrics}"
        );

        // A second scrape adds nothing by itself.
        let again = fetch(&app).await;
        assert_eq!(
            value(&again, "assetpool_cache_requests_total{cache=\"api_key\",result=\"hit\"}"),
            key_hits
        );

        // No identifier or secret in any label or value.
        let users = app.admin.list_users(&assetpool_core::store::CreationPage::all()).await.unwrap();
        let user = users.first().expect("one user");
        for forbidden in [
            key.key.as_str(),
            key.id.as_str(),
            key.application.as_str(),
            user.id.as_str(),
            "alice@example.com",
            "127.0.0.1",
            token.as_str(),
            refresh.as_str(),
            PASSWORD,
        ] {
            assert!(!again.contains(forbidden), "{forbidden} appears in /metrics");
        }
        // Labels come from fixed sets only.
        for line in again.lines().filter(|line| !line.starts_with('#')) {
            if let Some((_, labels)) = line.split_once('{') {
                for pair in labels.split('}').next().unwrap_or_default().split(',') {
                    let name = pair.split('=').next().unwrap_or_default();
                    assert!(
                        [
                            "route", "status", "code", "cache", "result", "operation", "le",
                            "version"
                        ]
                        .contains(&name),
                        "unexpected label {name} in {line}"
                    );
                }
            }
        }
    }

    async fn refused_hashing_is_counted(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.hashing.workers = 1;
            settings.hashing.queue = 0;
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let responses = app.concurrent_logins(&key.key, 12).await;
        let mut overloaded = 0_u32;
        for response in responses {
            if response.status() == 503 {
                assert_error(response, 503, "overloaded").await;
                overloaded += 1;
            } else {
                assert_eq!(response.status(), 401);
            }
        }
        assert!(overloaded > 0, "some logins must be refused at once");
        let metrics = fetch(&app).await;
        let rejected = value(&metrics, "assetpool_password_hashing_rejected_total");
        assert!(rejected >= 1.0, "{metrics}");
        assert_eq!(rejected, f64::from(overloaded), "{metrics}");
        assert_eq!(value(&metrics, "assetpool_password_hashing_queued"), 0.0);
        assert_eq!(
            value(&metrics, "assetpool_auth_failures_total{code=\"overloaded\"}"),
            f64::from(overloaded)
        );
    }
}
