//! Usage per key: counted on the request path, written in batches and at
//! graceful shutdown, exact across restarts.

use crate::backend_tests;
use crate::helpers::TestApp;
use assetpool_core::ids::KeyId;
use assetpool_core::store::UsageResolution;
use chrono::Duration;
use std::time::Duration as StdDuration;

async fn usage_of(
    app: &TestApp,
    key_id: &KeyId,
    resolution: UsageResolution,
    period: Duration,
) -> assetpool_wire::KeyUsageResponse {
    app.admin
        .key_usage(key_id, resolution, period)
        .await
        .unwrap()
}

/// Sends `count` requests to `/v1/resource` from 8 concurrent tasks; every
/// `bad_every`-th carries a malformed token.
async fn hammer(app: &TestApp, key: &str, token: &str, count: usize, bad_every: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = app.client.clone();
        let url = app.url("/v1/resource");
        let key = key.to_owned();
        let token = token.to_owned();
        tasks.spawn(async move {
            for index in (worker..count).step_by(8) {
                let token = if index % bad_every == 0 {
                    "not-a-token"
                } else {
                    token.as_str()
                };
                let response = client
                    .get(&url)
                    .header("x-api-key", &key)
                    .header("x-api-token", token)
                    .send()
                    .await
                    .unwrap();
                let expected = if index % bad_every == 0 { 401 } else { 200 };
                assert_eq!(response.status(), expected);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

backend_tests! {
    async fn usage_is_exact_after_1000_requests_and_a_graceful_restart(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        hammer(&app, &key.key, &token, 1000, 100).await;
        let url = app.database_url.clone();
        let storage = app.stop().await;

        let second = TestApp::start(url.clone(), storage, |_| {}).await;
        let usage = usage_of(&second, &key.id, UsageResolution::Hour, Duration::hours(2)).await;
        // 1000 protected requests and the login's own request.
        assert_eq!(usage.totals.requests, 1001, "{usage:?}");
        assert_eq!(usage.totals.success, 991);
        assert_eq!(usage.totals.client_errors.get("invalid_token"), Some(&10));
        assert_eq!(usage.totals.logins, 1);
        assert_eq!(usage.totals.failed_logins, 0);
        assert_eq!(usage.totals.server_errors, 0);
        assert_eq!(usage.last_address.as_deref(), Some("127.0.0.1"));
        assert!(usage.last_used_at.is_some());
        assert_eq!(usage.distinct_addresses.len(), 1);
        assert_eq!(usage.distinct_addresses[0].addresses, 1);
        let by_minute = usage_of(&second, &key.id, UsageResolution::Minute, Duration::hours(1)).await;
        let minute_total: u64 = by_minute.series.iter().map(|bucket| bucket.counts.requests).sum();
        assert_eq!(minute_total, 1001);
        let by_day = usage_of(&second, &key.id, UsageResolution::Day, Duration::days(2)).await;
        assert_eq!(by_day.totals, usage.totals);

        // The second server adds to the same counters.
        hammer(&second, &key.key, &token, 100, 50).await;
        let storage = second.stop().await;
        let third = TestApp::start(url, storage, |_| {}).await;
        let usage = usage_of(&third, &key.id, UsageResolution::Hour, Duration::hours(2)).await;
        assert_eq!(usage.totals.requests, 1101);
        assert_eq!(usage.totals.client_errors.get("invalid_token"), Some(&12));
    }

    async fn usage_is_split_by_minute_and_outcome(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        let wrong = app.login(&key.key, "alice@example.com", "wrong password!!").await;
        assert_eq!(wrong.status(), 401);
        app.state.service.flush_usage().await.unwrap();
        app.clock.advance(Duration::minutes(2));
        for _ in 0..3 {
            assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        }
        let missing = app
            .client
            .get(app.url("/v1/resource"))
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 401);
        app.state.service.flush_usage().await.unwrap();
        let usage = usage_of(&app, &key.id, UsageResolution::Minute, Duration::minutes(10)).await;
        let busy: Vec<_> = usage
            .series
            .iter()
            .filter(|bucket| bucket.counts.requests > 0 || bucket.counts.logins > 0)
            .collect();
        assert_eq!(busy.len(), 2, "{usage:?}");
        assert_eq!(busy[0].counts.logins, 1);
        assert_eq!(busy[0].counts.failed_logins, 1);
        assert_eq!(busy[0].counts.success, 1);
        assert_eq!(busy[0].counts.client_errors.get("invalid_credentials"), Some(&1));
        assert_eq!(busy[1].counts.success, 3);
        assert_eq!(busy[1].counts.client_errors.get("missing_token"), Some(&1));
        assert_eq!(busy[1].start - busy[0].start, Duration::minutes(2));
    }

    async fn refusals_of_a_known_key_are_counted(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        app.admin.revoke_api_key(&key.id, None).await.unwrap();
        app.eventually(StdDuration::from_secs(2), || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        app.state.service.flush_usage().await.unwrap();
        let usage = usage_of(&app, &key.id, UsageResolution::Hour, Duration::hours(1)).await;
        assert!(usage.totals.client_errors.get("api_key_revoked").is_some_and(|count| *count >= 1));
    }

    async fn usage_tracking_off_still_records_last_use(backend) {
        let app = TestApp::spawn_with(backend, |settings| settings.usage_tracking = false).await;
        let (key, token, _) = app.logged_in().await;
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        app.state.service.flush_usage().await.unwrap();
        let usage = usage_of(&app, &key.id, UsageResolution::Hour, Duration::hours(1)).await;
        assert_eq!(usage.totals.requests, 0);
        assert!(usage.last_used_at.is_some());
        assert!(app.admin.api_key(&key.id).await.unwrap().last_used_at.is_some());
    }

    async fn last_use_is_written_to_the_minute_with_usage_tracking_off(backend) {
        let app = TestApp::spawn_with(backend, |settings| settings.usage_tracking = false).await;
        let (key, token, _) = app.logged_in().await;
        let last_used = || async {
            let key = app.admin.api_key(&key.id).await.unwrap();
            key.last_used_at.map(|at| at.timestamp())
        };
        let first = assetpool_core::Clock::now(&*app.clock).timestamp();
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        app.state.service.flush_usage().await.unwrap();
        assert_eq!(last_used().await, Some(first), "a key's first use is written at once");
        // Within the minute: not written again.
        app.clock.advance(Duration::seconds(59));
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        app.state.service.flush_usage().await.unwrap();
        assert_eq!(last_used().await, Some(first));
        // A minute past the last one written: written.
        app.clock.advance(Duration::seconds(2));
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        app.state.service.flush_usage().await.unwrap();
        assert_eq!(last_used().await, Some(first + 61));
    }

    async fn usage_periods_beyond_retention_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(assetpool_core::Environment::Production).await;
        let refused = app
            .admin
            .key_usage(&key.id, UsageResolution::Minute, Duration::days(3))
            .await;
        assert!(refused.is_err());
        let unknown = app
            .admin
            .key_usage(&"key_unknown".into(), UsageResolution::Hour, Duration::hours(1))
            .await;
        assert!(unknown.is_err());
    }
}

/// `?since=` takes the one period grammar of the command line's `--since`:
/// a number with an optional unit (s, m or min, h, d, w) in any case, bare
/// for seconds, at most ten years; anything else is `invalid_request`.
#[tokio::test]
async fn periods_of_the_admin_api_take_the_command_lines_grammar() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let admin = crate::admin::admin_session(&app).await;
    let id = &admin.key.id;
    let status = |path: String| {
        let request = admin.request(&app, reqwest::Method::GET, &path);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for since in ["7200", "120m", "120MIN", "2H", "2h"] {
        let path = format!("/admin/keys/{id}/usage?since={since}&bucket=minute");
        assert_eq!(status(path).await, 200, "{since}");
    }
    for since in ["3600", "1w", "3660d", "7D"] {
        assert_eq!(
            status(format!("/admin/alerts?since={since}")).await,
            200,
            "{since}"
        );
    }
    for since in [
        "0",
        "1.5h",
        "24 h",
        "h",
        "-1h",
        "3661d",
        "99999999999999999999",
    ] {
        let path = format!("/admin/alerts?since={}", since.replace(' ', "%20"));
        assert_eq!(status(path).await, 400, "{since}");
    }
}
