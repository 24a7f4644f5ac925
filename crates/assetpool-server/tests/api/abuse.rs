//! Abuse protection over HTTP: login throttling per (account, address), per
//! address and per account without locking the owner out, shared by every
//! server on the database and cleared by support staff; per-key rate limits
//! and quotas. (No user enumeration by timing: `tests/timing`.)
//!
//! Client addresses differ by binding the test's sockets to other loopback
//! addresses (127.0.0.0/8 all reach the server on 127.0.0.1).

use crate::backend_tests;
use crate::helpers::{Storage, TestApp, TestKey, PASSWORD};
use assetpool_core::limits::{KeyLimits, Quota, QuotaPeriod, RateLimit, RateUnit};
use assetpool_core::store::ApiKeyUpdate;
use assetpool_core::Environment;
use reqwest::Response;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const EMAIL: &str = "victim@example.com";
const WRONG: &str = "not the password, but long";

/// A client whose connections come from 127.0.0.`last`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    key: &str,
    email: &str,
    password: &str,
) -> Response {
    client
        .post(app.url("/api/authentication/login"))
        .header("x-api-key", key)
        .json(&json!({"username": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn status_and_code(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn get_resource(app: &TestApp, key: &str, token: &str) -> Response {
    app.resource(key, token).await
}

/// Logs in through `key` and returns the access token.
async fn token_for(app: &TestApp, key: &TestKey, email: &str) -> String {
    app.create_user(email).await;
    let response = app.login(&key.key, email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

backend_tests! {
    async fn the_owner_logs_in_while_an_attacker_is_throttled(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        let owner = client_from(2);
        let attacker = client_from(3);

        for _ in 0..5 {
            let response = login_from(&app, &attacker, &key.key, EMAIL, WRONG).await;
            assert_eq!(status_and_code(response).await, (401, "invalid_credentials".into()));
        }
        // Over the pair limit: refused even with the right password, with Retry-After.
        let response = login_from(&app, &attacker, &key.key, EMAIL, PASSWORD).await;
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(status_and_code(response).await, (429, "too_many_attempts".into()));
        // The owner, from their own address, is not affected.
        let response = login_from(&app, &owner, &key.key, EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200);
        // The failures are on record with the key they came through.
        let entries = app.admin.login_throttles(Some(EMAIL)).await.unwrap();
        let pair = entries
            .iter()
            .find(|entry| entry.address == "127.0.0.3" && entry.account == EMAIL)
            .expect("the attacker's pair counter");
        assert_eq!(pair.counter.failures, 5);
        assert_eq!(pair.api_key_id.as_ref(), Some(&key.id));
    }

    async fn the_account_limit_spares_addresses_the_owner_used(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        let owner = client_from(2);
        assert_eq!(login_from(&app, &owner, &key.key, EMAIL, PASSWORD).await.status(), 200);

        // A distributed attack: 50 addresses, one failure each (under every
        // pair and address limit, up to the account limit of 50).
        for last in 10..60u8 {
            let response = login_from(&app, &client_from(last), &key.key, EMAIL, WRONG).await;
            assert_eq!(response.status(), 401);
        }
        // A new address is refused by the account limit, even with the password...
        let stranger = login_from(&app, &client_from(99), &key.key, EMAIL, PASSWORD).await;
        assert_eq!(status_and_code(stranger).await, (429, "too_many_attempts".into()));
        // ...but the owner's known address is never locked out by it.
        let response = login_from(&app, &owner, &key.key, EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200);
    }

    async fn credential_stuffing_is_throttled_per_address(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user(EMAIL).await;
        let stuffer = client_from(7);
        for index in 0..50 {
            let email = format!("user{index}@example.com");
            let response = login_from(&app, &stuffer, &key.key, &email, WRONG).await;
            assert_eq!(response.status(), 401);
        }
        // The address is now refused for every account, including real ones.
        let response = login_from(&app, &stuffer, &key.key, EMAIL, PASSWORD).await;
        assert_eq!(status_and_code(response).await, (429, "too_many_attempts".into()));
        // Others are not.
        let response = login_from(&app, &client_from(8), &key.key, EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200);
    }

    async fn throttling_is_shared_by_servers_and_cleared_by_unlock(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let key = first.create_key(Environment::Production).await;
        first.create_user(EMAIL).await;
        let attacker = client_from(3);
        for _ in 0..5 {
            let response = login_from(&first, &attacker, &key.key, EMAIL, WRONG).await;
            assert_eq!(response.status(), 401);
        }
        // The other server refuses the same pair at once.
        let response = login_from(&second, &attacker, &key.key, EMAIL, PASSWORD).await;
        assert_eq!(status_and_code(response).await, (429, "too_many_attempts".into()));

        let cleared = second.admin.unlock_user("Victim@Example.com").await.unwrap();
        assert_eq!(cleared, 2, "the pair and the account counters");
        let response = login_from(&first, &attacker, &key.key, EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200);
    }

    async fn a_key_over_its_rate_gets_429_with_rate_limit_headers(backend) {
        let app = TestApp::spawn(backend).await;
        let limits = KeyLimits {
            rate: Some(RateLimit { requests: 1, unit: RateUnit::Hour, burst: 3 }),
            quota: None,
        };
        let limited = app.create_key_with(Environment::Production, None, limits).await;
        let token = token_for(&app, &limited, EMAIL).await;
        // The login used one request of the burst.
        for _ in 0..2 {
            assert_eq!(get_resource(&app, &limited.key, &token).await.status(), 200);
        }
        let refused = get_resource(&app, &limited.key, &token).await;
        let headers = refused.headers().clone();
        assert_eq!(status_and_code(refused).await, (429, "rate_limited".into()));
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&retry_after), "{retry_after}");
        assert_eq!(headers["ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-reset"].to_str().unwrap(), retry_after.to_string());
        // A key of the same application without limits is not affected.
        let free = app.create_key_in(Environment::Production, Some(&limited.application)).await;
        assert_eq!(get_resource(&app, &free.key, &token).await.status(), 200);
        // Bad keys are refused for what they are, not rate limited.
        let response = get_resource(&app, "apk_prod_nope", &token).await;
        assert_eq!(status_and_code(response).await, (401, "invalid_api_key".into()));
    }

    async fn a_quota_is_counted_across_servers(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let limits = KeyLimits {
            rate: None,
            quota: Some(Quota { requests: 6, period: QuotaPeriod::Day }),
        };
        let key = first.create_key_with(Environment::Production, None, limits).await;
        let token = token_for(&first, &key, EMAIL).await;
        // 1 (login) + 2 on the first server, written with the usage flush.
        for _ in 0..2 {
            assert_eq!(get_resource(&first, &key.key, &token).await.status(), 200);
        }
        first.state.service.flush_usage().await.unwrap();
        // The second server counts 3 of its own, then learns the total of 6.
        for _ in 0..3 {
            assert_eq!(get_resource(&second, &key.key, &token).await.status(), 200);
        }
        second.state.service.flush_usage().await.unwrap();
        let refused = get_resource(&second, &key.key, &token).await;
        assert!(refused.headers().contains_key("retry-after"));
        assert_eq!(refused.headers()["ratelimit-limit"], "6");
        assert_eq!(status_and_code(refused).await, (429, "rate_limited".into()));
        first.state.service.flush_usage().await.unwrap();
        let refused = get_resource(&first, &key.key, &token).await;
        assert_eq!(status_and_code(refused).await, (429, "rate_limited".into()));
        // The next day the quota starts again.
        first.clock.advance(chrono::Duration::hours(13));
        assert_eq!(get_resource(&first, &key.key, &token).await.status(), 200);
    }

    /// A server that starts after a key's quota was spent elsewhere (a
    /// restart, a new node) learns the stored total before the key's first
    /// request there, instead of granting the whole quota again.
    async fn a_new_server_refuses_a_quota_spent_before_it_started(backend) {
        let first = TestApp::spawn(backend).await;
        let limits = KeyLimits {
            rate: None,
            quota: Some(Quota { requests: 4, period: QuotaPeriod::Day }),
        };
        let key = first.create_key_with(Environment::Production, None, limits).await;
        let token = token_for(&first, &key, EMAIL).await;
        // 1 (login) + 3: the quota is spent, and flushed.
        for _ in 0..3 {
            assert_eq!(get_resource(&first, &key.key, &token).await.status(), 200);
        }
        first.state.service.flush_usage().await.unwrap();
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let refused = get_resource(&second, &key.key, &token).await;
        assert_eq!(status_and_code(refused).await, (429, "rate_limited".into()));
        // The next day the quota starts again.
        second.clock.advance(chrono::Duration::hours(13));
        assert_eq!(get_resource(&second, &key.key, &token).await.status(), 200);
    }

    /// Rate limits are checked in each server's memory: behind a load
    /// balancer, N servers admit at most N times a key's burst (and N times
    /// its sustained rate). Measured here with three servers.
    async fn three_servers_overshoot_a_rate_limit_by_at_most_three_times(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let third = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let limits = KeyLimits {
            rate: Some(RateLimit { requests: 1, unit: RateUnit::Hour, burst: 5 }),
            quota: None,
        };
        let key = first.create_key_with(Environment::Production, None, limits).await;
        let token = token_for(&first, &key, EMAIL).await;
        let nodes = [&first, &second, &third];
        let mut admitted = 0;
        for round in 0..30 {
            let status = get_resource(nodes[round % 3], &key.key, &token).await.status();
            if status == 200 {
                admitted += 1;
            } else {
                assert_eq!(status, 429);
            }
        }
        // The login took one of the first server's burst.
        eprintln!("three servers admitted {admitted} of 30 requests for a burst of 5");
        assert_eq!(admitted, 3 * 5 - 1);
    }

    async fn updated_limits_apply_on_a_running_server(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        let token = token_for(&app, &key, EMAIL).await;
        for _ in 0..5 {
            assert_eq!(get_resource(&app, &key.key, &token).await.status(), 200);
        }
        let limits = KeyLimits {
            rate: Some(RateLimit { requests: 1, unit: RateUnit::Hour, burst: 1 }),
            quota: None,
        };
        let update = ApiKeyUpdate { name: None, limits: Some(limits),
        scopes: None, };
        let shown = app.admin.update_api_key(&key.id, update).await.unwrap();
        assert_eq!(shown.rate_limit.as_deref(), Some("1/h"));
        assert_eq!(shown.burst, Some(1));
        let took = app
            .eventually(Duration::from_secs(1), || async {
                get_resource(&app, &key.key, &token).await.status() == 429
            })
            .await;
        assert!(took < Duration::from_secs(1));
        let update = ApiKeyUpdate { name: None, limits: Some(KeyLimits::default()),
        scopes: None, };
        app.admin.update_api_key(&key.id, update).await.unwrap();
        app.eventually(Duration::from_secs(1), || async {
            get_resource(&app, &key.key, &token).await.status() == 200
        })
        .await;
    }
}
