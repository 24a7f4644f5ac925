//! Network allow-lists: a key limited to client networks is refused with 403
//! `address_not_allowed` from any other address (the address a trusted proxy
//! forwards, else the socket's), on every endpoint that takes a key, login
//! included and before any password is checked; an unknown address is
//! refused; the alert `address_not_allowed` is raised once per episode;
//! changes reach every server within a second.

use crate::admin::admin_session;
use crate::helpers::{assert_error, Storage, TestApp, TestKey, PASSWORD};
use crate::lifecycle::admin_call;
use assetpool_core::admin::CreateApiKey;
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::limits::KeyLimits;
use assetpool_core::Environment;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use std::time::Duration;

const EMAIL: &str = "alice@example.com";
const INSIDE: &str = "203.0.113.9";
const OUTSIDE: &str = "198.51.100.7";
const FORM: &str = "application/x-www-form-urlencoded";
const WITHIN: Duration = Duration::from_secs(1);

/// A server that believes `X-Forwarded-For` from 127.0.0.0/8 (the tests' socket).
async fn behind_a_trusted_proxy(backend: crate::helpers::Backend) -> TestApp {
    TestApp::spawn_with(backend, |settings| {
        settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
}

/// A production key limited to `cidrs`, and the user alice.
async fn limited_key(app: &TestApp, cidrs: &[&str]) -> TestKey {
    let issued = app
        .admin
        .create_api_key(CreateApiKey {
            name: "limited".to_owned(),
            environment: Environment::Production,
            application_id: None,
            expires_in: None,
            limits: KeyLimits::default(),
            metadata: None,
            owner: None,
            allowed_networks: Some(AllowedNetworks::parse(cidrs).unwrap()),
            scopes: None,
        })
        .await
        .unwrap();
    let _ = app.admin.create_user(EMAIL, PASSWORD.into(), false).await;
    TestKey {
        id: issued.record.id.clone(),
        key: issued.secret.expose().to_owned(),
        application: issued.record.application_id.clone(),
    }
}

/// `request` as if from `address` (through the trusted proxy), or straight
/// from the socket when `None`.
fn from(request: RequestBuilder, address: Option<&str>) -> RequestBuilder {
    match address {
        Some(address) => request.header("x-forwarded-for", address),
        None => request,
    }
}

async fn login_from(app: &TestApp, key: &str, address: Option<&str>, password: &str) -> Response {
    let request = app
        .client
        .post(app.url("/api/authentication/login"))
        .header("x-api-key", key)
        .json(&json!({"username": EMAIL, "password": password}));
    from(request, address).send().await.unwrap()
}

async fn tokens_from(app: &TestApp, key: &str, address: Option<&str>) -> (String, String) {
    let response = login_from(app, key, address, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

async fn get_from(
    app: &TestApp,
    path: &str,
    key: &str,
    token: &str,
    address: Option<&str>,
) -> Response {
    let request = app
        .client
        .get(app.url(path))
        .header("x-api-key", key)
        .header("x-api-token", token);
    from(request, address).send().await.unwrap()
}

async fn form_from(
    app: &TestApp,
    path: &str,
    key: &str,
    form: String,
    address: Option<&str>,
) -> Response {
    let request = app.post_raw(path, FORM, form).header("x-api-key", key);
    from(request, address).send().await.unwrap()
}

async fn oauth_refusal(response: Response) {
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "address_not_allowed", "{body}");
    assert!(body["error_description"].is_string());
}

crate::backend_tests! {
    async fn a_key_is_refused_outside_its_allow_list_on_every_endpoint(backend) {
        let app = behind_a_trusted_proxy(backend).await;
        let key = limited_key(&app, &["203.0.113.0/24", "2001:db8::/32"]).await;
        let (token, refresh_token) = tokens_from(&app, &key.key, Some(INSIDE)).await;
        for inside in [INSIDE, "2001:db8:5::1", "198.51.100.1, 203.0.113.77"] {
            let response = get_from(&app, "/v1/resource", &key.key, &token, Some(inside)).await;
            assert_eq!(response.status(), 200, "{inside}");
        }
        // Outside: the right-most untrusted address decides, so a client
        // cannot name an allowed one to the left of its own.
        for outside in [OUTSIDE, "2001:db9::1", "203.0.113.9, 198.51.100.7"] {
            let response = get_from(&app, "/v1/resource", &key.key, &token, Some(outside)).await;
            let body = assert_error(response, 403, "address_not_allowed").await;
            assert!(!body.to_string().contains(OUTSIDE), "{body}");
        }
        let outside = Some(OUTSIDE);
        assert_error(login_from(&app, &key.key, outside, PASSWORD).await, 403, "address_not_allowed").await;
        let refresh = app
            .client
            .post(app.url("/api/authentication/refresh"))
            .header("x-api-key", &key.key)
            .header("x-forwarded-for", OUTSIDE)
            .json(&json!({"refreshToken": refresh_token}))
            .send()
            .await
            .unwrap();
        assert_error(refresh, 403, "address_not_allowed").await;
        let logout = app
            .client
            .post(app.url("/api/authentication/logout"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("x-forwarded-for", OUTSIDE)
            .send()
            .await
            .unwrap();
        assert_error(logout, 403, "address_not_allowed").await;
        let verify = get_from(&app, "/auth/verify", &key.key, &token, outside).await;
        assert_eq!(verify.headers()["cache-control"], "no-store");
        assert_error(verify, 403, "address_not_allowed").await;
        let password = format!("grant_type=password&username=alice%40example.com&password={}", PASSWORD.replace(' ', "+"));
        oauth_refusal(form_from(&app, "/oauth/token", &key.key, password.clone(), outside).await).await;
        let grant = format!("grant_type=refresh_token&refresh_token={refresh_token}");
        oauth_refusal(form_from(&app, "/oauth/token", &key.key, grant, outside).await).await;
        let introspection = serde_urlencoded::to_string([("token", &token)]).unwrap();
        oauth_refusal(form_from(&app, "/oauth/introspect", &key.key, introspection, outside).await).await;
        // The same requests from inside work (the refusals spent nothing).
        let response = form_from(&app, "/oauth/token", &key.key, password, Some(INSIDE)).await;
        assert_eq!(response.status(), 200);
        let refreshed = app
            .client
            .post(app.url("/api/authentication/refresh"))
            .header("x-api-key", &key.key)
            .header("x-forwarded-for", INSIDE)
            .json(&json!({"refreshToken": refresh_token}))
            .send()
            .await
            .unwrap();
        assert_eq!(refreshed.status(), 200);

        // Without a forwarding header the socket's address (127.0.0.1) counts.
        let direct = get_from(&app, "/v1/resource", &key.key, &token, None).await;
        assert_error(direct, 403, "address_not_allowed").await;
        // A key without an allow-list is used from anywhere.
        let free = app.create_key(Environment::Production).await;
        let (free_token, _) = tokens_from(&app, &free.key, Some(OUTSIDE)).await;
        let response = get_from(&app, "/v1/resource", &free.key, &free_token, Some(OUTSIDE)).await;
        assert_eq!(response.status(), 200);
    }

    async fn a_login_from_outside_is_refused_before_any_password_check(backend) {
        let app = behind_a_trusted_proxy(backend).await;
        let key = limited_key(&app, &["203.0.113.0/24"]).await;
        // Far more wrong passwords than the throttle allows: every one is
        // 403, none 401 or 429, and nothing is counted against the account.
        for _ in 0..12 {
            let response = login_from(&app, &key.key, Some(OUTSIDE), "wrong password!!").await;
            assert_error(response, 403, "address_not_allowed").await;
        }
        // A password over the limit is not even looked at.
        let long = "x".repeat(2000);
        assert_error(login_from(&app, &key.key, Some(OUTSIDE), &long).await, 403, "address_not_allowed").await;
        assert!(app.admin.login_throttles(Some(EMAIL)).await.unwrap().is_empty());
        assert_eq!(app.state.service.hashing_in_flight(), 0);
        // From inside, the right password works at once.
        tokens_from(&app, &key.key, Some(INSIDE)).await;
    }

    async fn an_unknown_client_address_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let key = limited_key(&app, &["0.0.0.0/0", "::/0"]).await;
        // Any real address is inside this list; the socket's is used here.
        let (token, _) = tokens_from(&app, &key.key, None).await;
        assert_eq!(app.resource(&key.key, &token).await.status(), 200);
        // A request whose address nobody knows is refused (fail closed).
        let service = &app.state.service;
        let refused = service.authenticate_key(Some(&key.key), None).await.unwrap_err();
        assert_eq!(refused.code().as_str(), "address_not_allowed");
        let unspecified = Some("0.0.0.0".parse().unwrap());
        let refused = service.authenticate_key(Some(&key.key), unspecified).await.unwrap_err();
        assert_eq!(refused.code().as_str(), "address_not_allowed");
    }

    async fn forwarding_headers_of_untrusted_peers_are_ignored(backend) {
        let app = TestApp::spawn(backend).await;
        let key = limited_key(&app, &["127.0.0.1"]).await;
        // The socket (127.0.0.1) is allowed whatever a client claims.
        let (token, _) = tokens_from(&app, &key.key, Some(OUTSIDE)).await;
        let response = get_from(&app, "/v1/resource", &key.key, &token, Some(OUTSIDE)).await;
        assert_eq!(response.status(), 200);
        let other = limited_key(&app, &[INSIDE]).await;
        let response = login_from(&app, &other.key, Some(INSIDE), PASSWORD).await;
        assert_error(response, 403, "address_not_allowed").await;
    }

    async fn refusals_raise_one_alert_per_episode(backend) {
        let app = behind_a_trusted_proxy(backend).await;
        let key = limited_key(&app, &["203.0.113.0/24"]).await;
        let (token, _) = tokens_from(&app, &key.key, Some(INSIDE)).await;
        for _ in 0..5 {
            let response = get_from(&app, "/v1/resource", &key.key, &token, Some(OUTSIDE)).await;
            assert_eq!(response.status(), 403);
            let response = login_from(&app, &key.key, Some("198.51.100.8"), PASSWORD).await;
            assert_eq!(response.status(), 403);
        }
        let alerts_of_rule = || async {
            app.admin
                .list_alerts(None, None, 100)
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|alert| alert.rule == "address_not_allowed")
                .collect::<Vec<_>>()
        };
        app.eventually(Duration::from_secs(5), || async { !alerts_of_rule().await.is_empty() })
            .await;
        // Give the queue a moment: later triggers fold into the same alert.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let alerts = alerts_of_rule().await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!(alert.api_key.as_deref(), Some(key.id.as_str()));
        let prefix = app.admin.api_key(&key.id).await.unwrap().prefix;
        assert_eq!(alert.evidence["keyPrefix"], prefix.as_str());
        assert_eq!(alert.evidence["clientAddress"], OUTSIDE);
        assert!(!alert.evidence.to_string().contains(&key.key));
        // Requests from inside raise nothing more.
        let response = get_from(&app, "/v1/resource", &key.key, &token, Some(INSIDE)).await;
        assert_eq!(response.status(), 200);
    }

    async fn allow_list_changes_reach_a_second_server_within_a_second(backend) {
        let first = behind_a_trusted_proxy(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        let admin = admin_session(&first).await;
        let key = first.create_key(Environment::Production).await;
        first.create_user(EMAIL).await;
        let (token, _) = tokens_from(&first, &key.key, Some(OUTSIDE)).await;
        let on_second = || get_from(&second, "/v1/resource", &key.key, &token, Some(OUTSIDE));
        assert_eq!(on_second().await.status(), 200);
        let path = format!("/admin/keys/{}", key.id);
        let body = json!({"allowedCidrs": ["203.0.113.0/24"]});
        let shown = admin_call(&first, &admin, Method::PATCH, &path, Some(body), 200).await;
        assert_eq!(shown["allowedCidrs"], json!(["203.0.113.0/24"]));
        let took = second
            .eventually(WITHIN, || async { on_second().await.status() == 403 })
            .await;
        eprintln!("the allow-list reached the second server in {took:?} ({backend:?})");
        assert_error(on_second().await, 403, "address_not_allowed").await;
        let inside = get_from(&second, "/v1/resource", &key.key, &token, Some(INSIDE)).await;
        assert_eq!(inside.status(), 200);
        let body = json!({"allowedCidrs": null});
        admin_call(&first, &admin, Method::PATCH, &path, Some(body), 200).await;
        second
            .eventually(WITHIN, || async { on_second().await.status() == 200 })
            .await;
    }
}
