//! Key lifecycle after creation: disable and enable (the key and the tokens
//! of the sessions opened through it, on every endpoint and every server
//! within a second), expiry changes, metadata and owner, through the admin
//! API and the admin operations the command line uses.

use crate::admin::{admin_session, AdminSession};
use crate::helpers::{assert_error, Storage, TestApp, TestKey, PASSWORD};
use assetpool_core::store::ApiKeyUpdate;
use assetpool_core::{Clock as _, Environment};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(1);
const FORM: &str = "application/x-www-form-urlencoded";

async fn with_key(app: &TestApp, path: &str, key: &str, token: Option<&str>) -> Response {
    let mut request = app.client.get(app.url(path)).header("x-api-key", key);
    if let Some(token) = token {
        request = request.header("x-api-token", token);
    }
    request.send().await.unwrap()
}

async fn logout(app: &TestApp, key: &str, token: &str) -> Response {
    app.client
        .post(app.url("/api/authentication/logout"))
        .header("x-api-key", key)
        .header("x-api-token", token)
        .send()
        .await
        .unwrap()
}

async fn oauth(app: &TestApp, key: &str, form: &str) -> Response {
    app.post_raw("/oauth/token", FORM, form.to_owned())
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, key: &str, token: &str) -> Response {
    let form = serde_urlencoded::to_string([("token", token)]).unwrap();
    app.post_raw("/oauth/introspect", FORM, form)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

async fn oauth_error(response: Response, status: u16, error: &str) {
    assert_eq!(response.status(), status, "{error}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

async fn tokens(response: Response) -> (String, String) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// The key's JSON as `keys show --json` prints it.
async fn key_json(app: &TestApp, key: &TestKey) -> Value {
    serde_json::to_value(app.admin.api_key(&key.id).await.unwrap()).unwrap()
}

crate::backend_tests! {
    async fn a_disabled_key_is_refused_on_every_endpoint_until_enabled(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, refresh_token) = app.logged_in().await;
        let shown = app.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        assert_eq!(shown.status.as_str(), "disabled");
        assert!(shown.disabled_at.is_some());
        assert_eq!(key_json(&app, &key).await["status"], "disabled");
        app.eventually(WITHIN, || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_disabled").await;
        let body = assert_error(
            app.login(&key.key, "alice@example.com", PASSWORD).await,
            401,
            "api_key_disabled",
        )
        .await;
        assert_eq!(body["message"], "the API key is disabled");
        assert_error(app.refresh(&key.key, &refresh_token).await, 401, "api_key_disabled").await;
        assert_error(logout(&app, &key.key, &token).await, 401, "api_key_disabled").await;
        let verify = with_key(&app, "/auth/verify", &key.key, Some(&token)).await;
        assert_eq!(verify.headers()["cache-control"], "no-store");
        assert_error(verify, 401, "api_key_disabled").await;
        // RFC 6749 endpoints: invalid_client, exactly as a revoked key.
        let form = format!("grant_type=password&username=alice%40example.com&password={}", PASSWORD.replace(' ', "+"));
        oauth_error(oauth(&app, &key.key, &form).await, 401, "invalid_client").await;
        let form = format!("grant_type=refresh_token&refresh_token={refresh_token}");
        oauth_error(oauth(&app, &key.key, &form).await, 401, "invalid_client").await;
        oauth_error(introspect(&app, &key.key, &token).await, 401, "invalid_client").await;

        // Enabled: the key and its live token and refresh token work again.
        let shown = app.admin.set_api_key_disabled(&key.id, false).await.unwrap();
        assert_eq!(shown.status.as_str(), "active");
        assert!(shown.disabled_at.is_none());
        app.eventually(WITHIN, || async {
            app.resource(&key.key, &token).await.status() == 200
        })
        .await;
        let (renewed, _) = tokens(app.refresh(&key.key, &refresh_token).await).await;
        assert_eq!(app.resource(&key.key, &renewed).await.status(), 200);
    }

    async fn tokens_of_a_disabled_key_are_refused_with_any_key_of_the_application(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, refresh_token) = app.logged_in().await;
        let sibling = app
            .create_key_in(Environment::Production, Some(&key.application))
            .await;
        assert_eq!(app.resource(&sibling.key, &token).await.status(), 200);
        app.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        app.eventually(WITHIN, || async {
            app.resource(&sibling.key, &token).await.status() == 401
        })
        .await;
        let refused = assert_error(app.resource(&sibling.key, &token).await, 401, "token_revoked").await;
        assert!(!refused.to_string().contains(&token));
        let verify = with_key(&app, "/auth/verify", &sibling.key, Some(&token)).await;
        assert_eq!(
            verify.headers()["www-authenticate"],
            r#"Bearer realm="assetpool", error="invalid_token""#
        );
        assert_error(verify, 401, "token_revoked").await;
        let answer: Value = introspect(&app, &sibling.key, &token).await.json().await.unwrap();
        assert_eq!(answer, json!({"active": false}));
        // Its refresh token waits (not spent) while the key is disabled.
        assert_error(
            app.refresh(&sibling.key, &refresh_token).await,
            401,
            "invalid_refresh_token",
        )
        .await;
        // The sibling's own sessions are untouched.
        let (own, _) = tokens(app.login(&sibling.key, "alice@example.com", PASSWORD).await).await;
        assert_eq!(app.resource(&sibling.key, &own).await.status(), 200);

        app.admin.set_api_key_disabled(&key.id, false).await.unwrap();
        app.eventually(WITHIN, || async {
            app.resource(&sibling.key, &token).await.status() == 200
        })
        .await;
        let answer: Value = introspect(&app, &sibling.key, &token).await.json().await.unwrap();
        assert_eq!(answer["active"], true);
        // The refreshed session still belongs to the key it was opened
        // through: disabling that key again refuses the new token too.
        let (renewed, _) = tokens(app.refresh(&sibling.key, &refresh_token).await).await;
        app.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        app.eventually(WITHIN, || async {
            app.resource(&sibling.key, &renewed).await.status() == 401
        })
        .await;
        assert_error(app.resource(&sibling.key, &renewed).await, 401, "token_revoked").await;
    }

    async fn disable_and_enable_reach_a_second_server_within_a_second(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let admin = admin_session(&first).await;
        let (key, token, _) = first.logged_in().await;
        let sibling = first
            .create_key_in(Environment::Production, Some(&key.application))
            .await;
        assert_eq!(second.resource(&key.key, &token).await.status(), 200);
        assert_eq!(second.resource(&sibling.key, &token).await.status(), 200);
        // Disabled over HTTP on the first server.
        let path = format!("/admin/keys/{}/disable", key.id);
        let shown = admin_call(&first, &admin, Method::POST, &path, None, 200).await;
        assert_eq!(shown["status"], "disabled");
        let took = second
            .eventually(WITHIN, || async {
                second.resource(&key.key, &token).await.status() == 401
                    && second.resource(&sibling.key, &token).await.status() == 401
            })
            .await;
        eprintln!("the disable reached the second server in {took:?} ({backend:?})");
        assert_error(second.resource(&key.key, &token).await, 401, "api_key_disabled").await;
        assert_error(second.resource(&sibling.key, &token).await, 401, "token_revoked").await;
        // Enabled directly on the database, as the command line does.
        first.admin.set_api_key_disabled(&key.id, false).await.unwrap();
        let took = second
            .eventually(WITHIN, || async {
                second.resource(&key.key, &token).await.status() == 200
                    && second.resource(&sibling.key, &token).await.status() == 200
            })
            .await;
        eprintln!("the enable reached the second server in {took:?} ({backend:?})");
        // A server started while a key is disabled knows it from the start.
        first.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        let third = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        assert_error(third.resource(&sibling.key, &token).await, 401, "token_revoked").await;
    }

    async fn a_disabled_key_is_revoked_but_not_rotated(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let key = app.create_key(Environment::Production).await;
        app.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        let error = app
            .admin
            .rotate_api_key(&key.id, chrono::Duration::seconds(60))
            .await
            .unwrap_err();
        assert_eq!(error.code().as_str(), "invalid_request");
        let rotate = format!("/admin/keys/{}/rotate", key.id);
        let body = admin_call(&app, &admin, Method::POST, &rotate, Some(json!({"grace": 0})), 400).await;
        assert_eq!(body["error"], "invalid_request");
        assert!(body["message"].as_str().unwrap().contains("disabled"));
        let revoked = app.admin.revoke_api_key(&key.id, Some("done")).await.unwrap();
        assert_eq!(revoked.status.as_str(), "revoked", "revoked wins over disabled");
        for action in ["enable", "disable"] {
            let path = format!("/admin/keys/{}/{action}", key.id);
            let body = admin_call(&app, &admin, Method::POST, &path, None, 400).await;
            assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
        }
        let unknown = admin_call(&app, &admin, Method::POST, "/admin/keys/key_unknown/disable", None, 404).await;
        assert_eq!(unknown["error"], "not_found");
        // Disabling twice and enabling an enabled key change nothing and succeed.
        let other = app.create_key(Environment::Production).await;
        let first = app.admin.set_api_key_disabled(&other.id, true).await.unwrap();
        app.clock.advance(chrono::Duration::seconds(30));
        let again = app.admin.set_api_key_disabled(&other.id, true).await.unwrap();
        assert_eq!(again.disabled_at, first.disabled_at);
        app.admin.set_api_key_disabled(&other.id, false).await.unwrap();
        let enabled = app.admin.set_api_key_disabled(&other.id, false).await.unwrap();
        assert_eq!(enabled.status.as_str(), "active");
    }

    async fn the_expiry_changes_after_creation(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let (key, token, _) = app.logged_in().await;
        let path = format!("/admin/keys/{}", key.id);
        let soon = app.clock.now() + chrono::Duration::seconds(60);
        let shown = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({"expiresAt": soon.to_rfc3339()})), 200).await;
        assert_eq!(shown["expiresAt"], json!(soon));
        assert_eq!(shown["status"], "active");
        app.clock.advance(chrono::Duration::seconds(61));
        app.eventually(WITHIN, || async {
            app.resource(&key.key, &token).await.status() == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_expired").await;
        assert_eq!(key_json(&app, &key).await["status"], "expired");
        // No expiry any more: the key (not rotated nor revoked) works again.
        let shown = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({"expiresAt": null})), 200).await;
        assert!(shown["expiresAt"].is_null());
        app.eventually(WITHIN, || async {
            app.resource(&key.key, &token).await.status() == 200
        })
        .await;
        // A past expiry is refused: disabling or revoking is what stops a key now.
        let past = app.clock.now() - chrono::Duration::seconds(1);
        let body = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({"expiresAt": past.to_rfc3339()})), 400).await;
        assert_eq!(body["error"], "invalid_request");
        for bad in [json!("tomorrow"), json!(17), json!("2030-01-01")] {
            let body = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({"expiresAt": bad})), 400).await;
            assert_eq!(body["error"], "invalid_request");
        }
        // A rotated key's expiry is its grace period: it cannot change.
        let rotate = format!("/admin/keys/{}/rotate", key.id);
        admin_call(&app, &admin, Method::POST, &rotate, Some(json!({"grace": 600})), 201).await;
        let later = (app.clock.now() + chrono::Duration::days(1)).to_rfc3339();
        let body = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({"expiresAt": later})), 400).await;
        assert!(body["message"].as_str().unwrap().contains("rotated"), "{body}");
        let audit = app.admin.list_audit(None, 100).await.unwrap();
        assert!(audit.items.iter().any(|entry| entry.action == "key.update"
            && entry.target == key.id.as_str()
            && entry.outcome == "failure"));
    }

    async fn an_expiry_change_reaches_a_second_server_within_a_second(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let (key, token, _) = first.logged_in().await;
        assert_eq!(second.resource(&key.key, &token).await.status(), 200);
        // The second server's clock runs a minute ahead: an expiry 30 s
        // ahead of the first's is already past there.
        second.clock.advance(chrono::Duration::seconds(60));
        let update = ApiKeyUpdate {
            expires_at: Some(Some(first.clock.now() + chrono::Duration::seconds(30))),
            ..ApiKeyUpdate::default()
        };
        first.admin.update_api_key(&key.id, update).await.unwrap();
        let took = second
            .eventually(WITHIN, || async {
                second.resource(&key.key, &token).await.status() == 401
            })
            .await;
        eprintln!("the expiry reached the second server in {took:?} ({backend:?})");
        assert_error(second.resource(&key.key, &token).await, 401, "api_key_expired").await;
        assert_eq!(first.resource(&key.key, &token).await.status(), 200);
    }

    async fn metadata_owner_and_allow_list_through_the_admin_api(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let created = admin_call(&app, &admin, Method::POST, "/admin/keys", Some(json!({
            "name": "billing",
            "environment": "prod",
            "metadata": {"team": "billing", "tier": 2, "tags": ["eu"]},
            "owner": "Owner@Example.com",
            "allowedCidrs": ["203.0.113.7/24", "2001:db8::1"],
        })), 201).await;
        let fields: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, ["application", "createdAt", "environment", "expiresAt", "id", "key", "name", "scopes"]);
        let path = format!("/admin/keys/{}", created["id"].as_str().unwrap());
        let shown = admin_call(&app, &admin, Method::GET, &path, None, 200).await;
        assert_eq!(shown["metadata"], json!({"team": "billing", "tier": 2, "tags": ["eu"]}));
        assert_eq!(shown["owner"], "owner@example.com");
        assert_eq!(shown["allowedCidrs"], json!(["203.0.113.0/24", "2001:db8::1/128"]));

        let patched = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({
            "metadata": {"team": "ops"},
            "owner": null,
            "allowedCidrs": ["198.51.100.0/24"],
        })), 200).await;
        assert_eq!(patched["metadata"], json!({"team": "ops"}));
        assert!(patched["owner"].is_null());
        assert_eq!(patched["allowedCidrs"], json!(["198.51.100.0/24"]));
        let cleared = admin_call(&app, &admin, Method::PATCH, &path, Some(json!({
            "metadata": null,
            "allowedCidrs": null,
        })), 200).await;
        for field in ["metadata", "owner", "allowedCidrs"] {
            assert!(cleared.get(field).is_some_and(Value::is_null), "{field} in {cleared}");
        }

        let too_big = json!({"notes": "x".repeat(4097)});
        for bad in [
            json!({"metadata": [1, 2]}),
            json!({"metadata": "text"}),
            json!({"metadata": too_big}),
            json!({"metadata": {"a": "\u{1b}[2J"}}),
            json!({"owner": "not an email"}),
            json!({"allowedCidrs": []}),
            json!({"allowedCidrs": ["10.0.0.0/33"]}),
            json!({"allowedCidrs": ["example.com"]}),
            json!({"allowedCidrs": "10.0.0.0/8"}),
        ] {
            let body = admin_call(&app, &admin, Method::PATCH, &path, Some(bad.clone()), 400).await;
            assert_eq!(body["error"], "invalid_request", "{bad}");
            assert!(!body["message"].as_str().unwrap().contains("example.com"), "{body}");
        }
        let bad_create = json!({"name": "x", "environment": "prod", "metadata": [1]});
        admin_call(&app, &admin, Method::POST, "/admin/keys", Some(bad_create), 400).await;

        // Every change is in the audit log with the admin's identity.
        let audit = app.admin.list_audit(None, 200).await.unwrap();
        let id = created["id"].as_str().unwrap();
        let updates: Vec<_> = audit
            .items
            .iter()
            .filter(|entry| entry.action == "key.update" && entry.target == id && entry.outcome == "success")
            .collect();
        assert_eq!(updates.len(), 2);
        assert!(updates.iter().all(|entry| entry.actor == "admin:root@example.com"));
        let created_entry = audit.items.iter().find(|entry| entry.action == "key.create" && entry.target == id).unwrap();
        assert_eq!(created_entry.detail["owner"], "Owner@Example.com");
        assert_eq!(created_entry.detail["allowedCidrs"], json!(["203.0.113.0/24", "2001:db8::1/128"]));
    }

    async fn disable_and_enable_are_audited_with_the_admin(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let key = app.create_key(Environment::Production).await;
        for action in ["disable", "enable"] {
            let path = format!("/admin/keys/{}/{action}", key.id);
            admin_call(&app, &admin, Method::POST, &path, None, 200).await;
        }
        let audit = app.admin.list_audit(None, 100).await.unwrap();
        for action in ["key.disable", "key.enable"] {
            let entry = audit
                .items
                .iter()
                .find(|entry| entry.action == action && entry.target == key.id.as_str())
                .unwrap_or_else(|| panic!("{action} audited"));
            assert_eq!(entry.actor, "admin:root@example.com");
            assert_eq!(entry.actor_id.as_deref(), Some(admin.user_id.as_str()));
            assert_eq!(entry.outcome, "success");
        }
        // A non-admin's token is forbidden.
        app.create_user("bob@example.com").await;
        let (bobs, _) = tokens(app.login(&admin.key.key, "bob@example.com", PASSWORD).await).await;
        let response = app
            .client
            .post(app.url(&format!("/admin/keys/{}/disable", key.id)))
            .header("x-api-key", &admin.key.key)
            .header("x-api-token", &bobs)
            .send()
            .await
            .unwrap();
        assert_error(response, 403, "forbidden").await;
        assert_eq!(key_json(&app, &key).await["status"], "active");
    }
}

/// Sends an admin request and expects `status`; returns the JSON body.
pub async fn admin_call(
    app: &TestApp,
    admin: &AdminSession,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let request = admin.request(app, method.clone(), path);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}
