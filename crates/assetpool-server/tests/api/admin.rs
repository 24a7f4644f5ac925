//! The admin HTTP API under `/admin/`: who may call it, that each operation
//! has its real effect, that each change lands in the audit log with the
//! admin's identity, pagination, refusals, and the OpenAPI document.

use crate::backend_tests;
use crate::helpers::{assert_error, Backend, TestApp, TestKey, PASSWORD};
use assetpool_core::alerts::{AlertRule, Trigger};
use assetpool_core::{Clock as _, Environment};
use reqwest::{Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

pub const ADMIN_EMAIL: &str = "root@example.com";

/// An admin logged in through a production key.
pub struct AdminSession {
    pub key: TestKey,
    pub token: String,
    pub user_id: String,
}

/// Creates an admin user and logs it in.
pub async fn admin_session(app: &TestApp) -> AdminSession {
    let key = app.create_key(Environment::Production).await;
    let user = app
        .admin
        .create_user(ADMIN_EMAIL, SecretString::from(PASSWORD), true)
        .await
        .unwrap();
    let token = login_token(app, &key.key, ADMIN_EMAIL).await;
    AdminSession {
        key,
        token,
        user_id: user.id,
    }
}

async fn login_token(app: &TestApp, key: &str, email: &str) -> String {
    let response = app.login(key, email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

impl AdminSession {
    pub fn request(&self, app: &TestApp, method: Method, path: &str) -> RequestBuilder {
        app.client
            .request(method, app.url(path))
            .header("x-api-key", &self.key.key)
            .header("authorization", format!("Bearer {}", self.token))
    }

    async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let request = self.request(app, method, path);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// Sends and expects `status`, returning the JSON body (or null).
    async fn expect(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let response = self.send(app, method.clone(), path, body).await;
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Every admin route (with a placeholder id where one is needed).
fn every_route() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/admin/keys"),
        (Method::POST, "/admin/keys"),
        (Method::GET, "/admin/keys/key_x"),
        (Method::PATCH, "/admin/keys/key_x"),
        (Method::POST, "/admin/keys/key_x/rotate"),
        (Method::POST, "/admin/keys/key_x/revoke"),
        (Method::POST, "/admin/keys/key_x/disable"),
        (Method::POST, "/admin/keys/key_x/enable"),
        (Method::GET, "/admin/keys/key_x/usage"),
        (Method::GET, "/admin/users"),
        (Method::POST, "/admin/users"),
        (Method::PATCH, "/admin/users/root@example.com"),
        (Method::POST, "/admin/users/root@example.com/disable"),
        (Method::POST, "/admin/users/root@example.com/enable"),
        (Method::POST, "/admin/users/root@example.com/unlock"),
        (Method::GET, "/admin/alerts"),
        (Method::POST, "/admin/alerts/alr_x/ack"),
        (Method::GET, "/admin/audit"),
        (Method::GET, "/admin/signing-keys"),
        (Method::POST, "/admin/signing-keys/rotate"),
    ]
}

/// The audit log as the admin API pages it, newest first.
async fn audit_entries(app: &TestApp, admin: &AdminSession) -> Vec<Value> {
    let page = admin
        .expect(app, Method::GET, "/admin/audit?limit=500", None, 200)
        .await;
    page["items"].as_array().unwrap().clone()
}

fn find_entry<'a>(entries: &'a [Value], action: &str, target: &str) -> &'a Value {
    entries
        .iter()
        .find(|entry| entry["action"] == action && entry["target"] == target)
        .unwrap_or_else(|| panic!("no {action} on {target} in {entries:?}"))
}

fn assert_by_admin(entry: &Value, admin: &AdminSession, outcome: &str) {
    assert_eq!(entry["actor"], format!("admin:{ADMIN_EMAIL}"), "{entry}");
    assert_eq!(entry["actorId"], admin.user_id.as_str(), "{entry}");
    assert_eq!(entry["outcome"], outcome, "{entry}");
}

backend_tests! {
    async fn only_admins_get_in(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let alice = login_token(&app, &key.key, "alice@example.com").await;
        for (method, path) in every_route() {
            let request = app
                .client
                .request(method.clone(), app.url(path))
                .header("x-api-key", &key.key)
                .header("x-api-token", &alice);
            let request = if method == Method::GET { request } else { request.json(&json!({})) };
            assert_error(request.send().await.unwrap(), 403, "forbidden").await;
            let anonymous = app.client.request(method.clone(), app.url(path)).header("x-api-key", &key.key);
            assert_error(anonymous.send().await.unwrap(), 401, "missing_token").await;
            let bad_key = app
                .client
                .request(method.clone(), app.url(path))
                .header("x-api-key", "ap_prod_notakey")
                .header("x-api-token", &admin.token);
            assert_error(bad_key.send().await.unwrap(), 401, "invalid_api_key").await;
        }
        // Nothing the non-admin tried happened.
        assert_eq!(app.admin.signing_keys().await.unwrap().len(), 1);
        let audit = app.admin.list_audit(None, 500).await.unwrap();
        assert!(audit.items.iter().all(|entry| !entry.actor.contains("alice")));
        // An admin gets in; once disabled, the admin's token is refused.
        admin.expect(&app, Method::GET, "/admin/keys", None, 200).await;
        app.admin.set_user_disabled(ADMIN_EMAIL, true).await.unwrap();
        app.eventually(Duration::from_secs(2), || async {
            admin.send(&app, Method::GET, "/admin/keys", None).await.status() == 401
        })
        .await;
        let refused = admin.send(&app, Method::GET, "/admin/keys", None).await;
        assert_error(refused, 401, "token_revoked").await;
    }

    async fn admins_manage_keys(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        app.create_user("alice@example.com").await;
        let body = json!({"name": "billing", "environment": "prod", "rateLimit": "50/s", "quota": "1000/day"});
        let created = admin.expect(&app, Method::POST, "/admin/keys", Some(body), 201).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["key"].as_str().unwrap().to_owned();
        assert_eq!(app.login(&secret, "alice@example.com", PASSWORD).await.status(), 200);

        let shown = admin.expect(&app, Method::GET, &format!("/admin/keys/{id}"), None, 200).await;
        assert_eq!(shown["rateLimit"], "50/s");
        assert_eq!(shown["quota"], "1000/day");
        assert!(shown.get("key").is_none());

        let change = json!({"name": "billing v2", "burst": 5, "quota": null});
        let updated = admin.expect(&app, Method::PATCH, &format!("/admin/keys/{id}"), Some(change), 200).await;
        assert_eq!(updated["name"], "billing v2");
        assert_eq!(updated["burst"], 5);
        assert!(updated.get("quota").is_none());
        assert!(updated.get("webhookSecret").is_none());

        let hook = json!({"webhook": "https://hooks.example.com/assetpool"});
        let hooked = admin.expect(&app, Method::PATCH, &format!("/admin/keys/{id}"), Some(hook), 200).await;
        assert!(hooked["webhookSecret"].as_str().unwrap().starts_with("whsec_"));
        let unhooked = admin
            .expect(&app, Method::PATCH, &format!("/admin/keys/{id}"), Some(json!({"webhook": null})), 200)
            .await;
        assert!(unhooked.get("webhookSecret").is_none());

        let rotated = admin
            .expect(&app, Method::POST, &format!("/admin/keys/{id}/rotate"), Some(json!({"grace": 0})), 201)
            .await;
        let successor = rotated["id"].as_str().unwrap().to_owned();
        let successor_secret = rotated["key"].as_str().unwrap().to_owned();
        assert_eq!(app.login(&successor_secret, "alice@example.com", PASSWORD).await.status(), 200);

        // Revoking without a body; the key is refused within a second.
        admin.expect(&app, Method::POST, &format!("/admin/keys/{successor}/revoke"), None, 200).await;
        let waited = app
            .eventually(Duration::from_secs(2), || async {
                app.login(&successor_secret, "alice@example.com", PASSWORD).await.status() == 401
            })
            .await;
        assert!(waited < Duration::from_secs(1), "{waited:?}");

        let usage = admin
            .expect(&app, Method::GET, &format!("/admin/keys/{id}/usage?since=1h&bucket=minute"), None, 200)
            .await;
        assert_eq!(usage["keyId"], id.as_str());
        assert_eq!(usage["bucket"], "minute");
        assert_eq!(usage["series"].as_array().unwrap().len(), 61);

        let unknown = admin.send(&app, Method::POST, "/admin/keys/key_unknown/revoke", None).await;
        assert_error(unknown, 404, "not_found").await;

        let entries = audit_entries(&app, &admin).await;
        let create = entries.iter().find(|entry| entry["action"] == "key.create").unwrap();
        assert_eq!(create["target"], id.as_str());
        for (action, target) in [
            ("key.create", id.as_str()),
            ("key.update", id.as_str()),
            ("key.webhook", id.as_str()),
            ("key.rotate", id.as_str()),
            ("key.revoke", successor.as_str()),
        ] {
            assert_by_admin(find_entry(&entries, action, target), &admin, "success");
        }
        let failed = find_entry(&entries, "key.revoke", "key_unknown");
        assert_by_admin(failed, &admin, "failure");
        assert_eq!(failed["error"], "not_found");
        // The same entries through core.
        let core = app.admin.list_audit(None, 500).await.unwrap();
        assert_eq!(core.items.len(), entries.len());
        assert!(core.items.iter().any(|entry| entry.action == "key.revoke"
            && entry.outcome == "failure"
            && entry.actor_id.as_deref() == Some(admin.user_id.as_str())));
    }

    async fn admins_manage_users(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let body = json!({"email": "Bob@Example.com", "password": PASSWORD});
        let created = admin.expect(&app, Method::POST, "/admin/users", Some(body), 201).await;
        assert_eq!(created["email"], "bob@example.com");
        assert_eq!(created["admin"], false);
        let bob = "bob@example.com";
        let key = &admin.key.key;
        assert_eq!(app.login(key, bob, PASSWORD).await.status(), 200);

        let disabled = admin.expect(&app, Method::POST, &format!("/admin/users/{bob}/disable"), None, 200).await;
        assert_eq!(disabled["disabled"], true);
        assert_error(app.login(key, bob, PASSWORD).await, 401, "invalid_credentials").await;
        let enabled = admin.expect(&app, Method::POST, &format!("/admin/users/{bob}/enable"), None, 200).await;
        assert_eq!(enabled["disabled"], false);
        assert_eq!(app.login(key, bob, PASSWORD).await.status(), 200);

        for _ in 0..3 {
            assert_eq!(app.login(key, bob, "wrong password 123").await.status(), 401);
        }
        assert!(!app.admin.login_throttles(Some(bob)).await.unwrap().is_empty());
        let unlocked = admin.expect(&app, Method::POST, &format!("/admin/users/{bob}/unlock"), None, 200).await;
        assert_eq!(unlocked["email"], bob);
        assert!(unlocked["cleared"].as_u64().unwrap() > 0);
        assert!(app.admin.login_throttles(Some(bob)).await.unwrap().is_empty());

        let unknown = admin.send(&app, Method::POST, "/admin/users/nobody@example.com/disable", None).await;
        assert_error(unknown, 404, "not_found").await;
        let weak = json!({"email": "carol@example.com", "password": "short"});
        let refused = admin.send(&app, Method::POST, "/admin/users", Some(weak)).await;
        let body = assert_error(refused, 400, "invalid_request").await;
        assert!(!body.to_string().contains("\"short\""));

        let entries = audit_entries(&app, &admin).await;
        for action in ["user.create", "user.disable", "user.enable", "user.unlock"] {
            assert_by_admin(find_entry(&entries, action, bob), &admin, "success");
        }
        assert_by_admin(find_entry(&entries, "user.disable", "nobody@example.com"), &admin, "failure");
    }

    async fn admins_see_and_acknowledge_alerts(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let service = &app.state.service;
        let trigger = Trigger::for_key(AlertRule::RevokedKeyUsed, &admin.key.id, json!({"address": "203.0.113.9"}), app.clock.now());
        let raised = service.alerts().raise(service.store().as_ref(), trigger).await.unwrap();
        let id = raised.alert.id.clone();
        let page = admin.expect(&app, Method::GET, "/admin/alerts?since=1h", None, 200).await;
        assert_eq!(page["items"][0]["id"], id.as_str());
        assert!(page["nextCursor"].is_null());
        let acked = admin.expect(&app, Method::POST, &format!("/admin/alerts/{id}/ack"), None, 200).await;
        assert_eq!(acked["acknowledgedBy"], format!("admin:{ADMIN_EMAIL}"));
        let unknown = admin.send(&app, Method::POST, "/admin/alerts/alr_unknown/ack", None).await;
        assert_error(unknown, 404, "not_found").await;
        let entries = audit_entries(&app, &admin).await;
        assert_by_admin(find_entry(&entries, "alert.ack", id.as_str()), &admin, "success");
        assert_by_admin(find_entry(&entries, "alert.ack", "alr_unknown"), &admin, "failure");
    }

    async fn admins_rotate_signing_keys(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let before = admin.expect(&app, Method::GET, "/admin/signing-keys", None, 200).await;
        assert_eq!(before["items"].as_array().unwrap().len(), 1);
        let rotated = admin.expect(&app, Method::POST, "/admin/signing-keys/rotate", None, 201).await;
        let kid = rotated["kid"].as_str().unwrap().to_owned();
        let after = admin.expect(&app, Method::GET, "/admin/signing-keys", None, 200).await;
        assert_eq!(after["items"].as_array().unwrap().len(), 2);
        // Nobody is logged out: the admin's token still works.
        assert_eq!(app.resource(&admin.key.key, &admin.token).await.status(), 200);
        let entries = audit_entries(&app, &admin).await;
        assert_by_admin(find_entry(&entries, "signing_key.rotate", &kid), &admin, "success");
    }

    async fn lists_are_paginated(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        for _ in 0..7 {
            app.create_key(Environment::Staging).await;
        }
        let keys = collect_pages(&app, &admin, "/admin/keys?limit=3").await;
        assert_eq!(keys.sizes, [3, 3, 2]);
        let mut expected: Vec<String> = app.admin.list_api_keys(None, &assetpool_core::store::CreationPage::all()).await.unwrap().into_iter().map(|key| key.id).collect();
        expected.sort();
        let mut got = keys.ids.clone();
        got.sort();
        assert_eq!(got, expected);
        let staging = collect_pages(&app, &admin, "/admin/keys?environment=staging&limit=5").await;
        assert_eq!(staging.sizes, [5, 2]);

        for number in 0..4 {
            app.create_user(&format!("user{number}@example.com")).await;
        }
        let users = collect_pages(&app, &admin, "/admin/users?limit=2").await;
        assert_eq!(users.sizes, [2, 2, 1]);

        // Audit: 7 key.create + 1 (admin's key) + 5 user.create = 13 entries.
        let audit = collect_pages(&app, &admin, "/admin/audit?limit=3").await;
        let total = app.admin.list_audit(None, 500).await.unwrap().items.len();
        assert_eq!(audit.ids.len(), total);
        assert_eq!(audit.sizes.iter().sum::<usize>(), total);
        assert!(audit.sizes[..audit.sizes.len() - 1].iter().all(|size| *size == 3));
    }

    async fn bad_values_are_invalid_requests(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let id = &admin.key.id;
        for path in [
            "/admin/keys?limit=0".to_owned(),
            "/admin/keys?limit=501".to_owned(),
            "/admin/keys?cursor=sekrit-cursor".to_owned(),
            "/admin/keys?environment=sekrit-env".to_owned(),
            "/admin/audit?cursor=sekrit".to_owned(),
            "/admin/alerts?since=sekrit".to_owned(),
            "/admin/users?limit=1&limit=2".to_owned(),
            format!("/admin/keys/{id}/usage?since=sekrit"),
            format!("/admin/keys/{id}/usage?bucket=sekrit"),
            format!("/admin/keys/{id}/usage?since=30d&bucket=minute"),
        ] {
            let body = assert_error(admin.send(&app, Method::GET, &path, None).await, 400, "invalid_request").await;
            assert!(!body.to_string().contains("sekrit"), "{path}: {body}");
        }
        for body in [
            json!({"name": "x", "environment": "sekrit"}),
            json!({"name": "x", "environment": "prod", "rateLimit": "sekrit"}),
            json!({"name": "x", "environment": "prod", "quota": "sekrit/day"}),
            json!({"name": "x", "environment": "prod", "burst": 3}),
            json!({"name": "x", "environment": "prod", "expiresIn": 0}),
            json!({"environment": "prod"}),
        ] {
            let refused = admin.send(&app, Method::POST, "/admin/keys", Some(body)).await;
            let body = assert_error(refused, 400, "invalid_request").await;
            assert!(!body.to_string().contains("sekrit"), "{body}");
        }
        let path = format!("/admin/keys/{id}");
        for body in [json!({}), json!({"webhook": "ftp://sekrit"}), json!({"rateLimit": 5})] {
            let refused = admin.send(&app, Method::PATCH, &path, Some(body)).await;
            let body = assert_error(refused, 400, "invalid_request").await;
            assert!(!body.to_string().contains("sekrit"), "{body}");
        }
        let rotate = format!("/admin/keys/{id}/rotate");
        let refused = admin.send(&app, Method::POST, &rotate, Some(json!({"grace": 999_999_999}))).await;
        assert_error(refused, 400, "invalid_request").await;
        let text = admin.request(&app, Method::POST, &rotate).header("content-type", "text/plain").body("x");
        assert_error(text.send().await.unwrap(), 415, "unsupported_media_type").await;
        assert_error(admin.send(&app, Method::GET, "/admin/keys/key_unknown", None).await, 404, "not_found").await;
        assert_error(admin.send(&app, Method::GET, "/admin/nothing-here", None).await, 404, "not_found").await;
        assert_error(admin.send(&app, Method::DELETE, "/admin/keys", None).await, 405, "method_not_allowed").await;
    }
}

struct Pages {
    sizes: Vec<usize>,
    ids: Vec<String>,
}

/// Follows `nextCursor` from `first`; checks there is no duplicate.
async fn collect_pages(app: &TestApp, admin: &AdminSession, first: &str) -> Pages {
    let mut pages = Pages {
        sizes: Vec::new(),
        ids: Vec::new(),
    };
    let mut path = first.to_owned();
    loop {
        let page = admin.expect(app, Method::GET, &path, None, 200).await;
        let items = page["items"].as_array().unwrap();
        pages.sizes.push(items.len());
        pages
            .ids
            .extend(items.iter().map(|item| item["id"].to_string()));
        let Some(cursor) = page["nextCursor"].as_str() else {
            break;
        };
        let cursor: String = serde_urlencoded::to_string([("cursor", cursor)]).unwrap();
        path = format!("{first}&{cursor}");
        assert!(pages.sizes.len() < 20, "pagination does not end");
    }
    let unique: BTreeSet<&String> = pages.ids.iter().collect();
    assert_eq!(
        unique.len(),
        pages.ids.len(),
        "duplicates in {:?}",
        pages.ids
    );
    pages.ids = pages
        .ids
        .iter()
        .map(|id| id.trim_matches('"').to_owned())
        .collect();
    pages
}

#[tokio::test]
async fn the_openapi_document_lists_the_admin_routes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document: Value = app.get_json("/openapi.json").await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["apiKey"]["in"], "header");
    assert_eq!(schemes["apiKey"]["name"], "x-api-key");
    assert_eq!(schemes["bearerToken"]["scheme"], "bearer");
    for (method, path) in every_route() {
        let path = path
            .replace("key_x", "{id}")
            .replace("alr_x", "{id}")
            .replace("root@example.com", "{email}");
        let operation = &document["paths"][&path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"]["403"].is_object(),
            "{method} {path}: no 403"
        );
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {path}: no 401"
        );
        // The API key with the token in x-api-token or as a bearer token.
        let security = &operation["security"];
        for token_scheme in ["apiToken", "bearerToken"] {
            assert!(
                security.as_array().is_some_and(|alternatives| alternatives
                    .iter()
                    .any(|both| both["apiKey"].is_array() && both[token_scheme].is_array())),
                "{method} {path}: {security}"
            );
        }
    }
}

const NEW_KEY: &str = r#"{"name": "documented", "environment": "production"}"#;
const NEW_USER: &str = r#"{"email": "documented@example.com", "password": "{password}"}"#;

/// (method, documented path, query to add or whole path to use, body, status).
const OPERATIONS: &[(&str, &str, &str, &str, u16)] = &[
    ("GET", "/admin/keys", "?limit=1", "", 200),
    ("GET", "/admin/keys", "?limit=0", "", 400),
    ("POST", "/admin/keys", "", NEW_KEY, 201),
    ("GET", "/admin/keys/{id}", "", "", 200),
    (
        "GET",
        "/admin/keys/{id}",
        "/admin/keys/key_unknown",
        "",
        404,
    ),
    (
        "PATCH",
        "/admin/keys/{id}",
        "",
        r#"{"webhook": "https://hooks.example.com/x"}"#,
        200,
    ),
    (
        "PATCH",
        "/admin/keys/{id}",
        "",
        r#"{"metadata": {"team": "docs"}, "owner": "docs@example.com", "allowedCidrs": ["0.0.0.0/0", "::/0"], "expiresAt": "2099-01-01T00:00:00Z"}"#,
        200,
    ),
    ("POST", "/admin/keys/{id}/disable", "", "", 200),
    (
        "POST",
        "/admin/keys/{id}/disable",
        "/admin/keys/key_unknown/disable",
        "",
        404,
    ),
    ("POST", "/admin/keys/{id}/enable", "", "", 200),
    (
        "PATCH",
        "/admin/keys/{id}",
        "",
        r#"{"scopes": ["orders:write", "orders:read"]}"#,
        200,
    ),
    (
        "PATCH",
        "/admin/keys/{id}",
        "",
        r#"{"scopes": ["Bad"]}"#,
        400,
    ),
    ("GET", "/admin/keys/{id}/usage", "?since=2h", "", 200),
    (
        "POST",
        "/admin/keys/{id}/rotate",
        "",
        r#"{"grace": 60}"#,
        201,
    ),
    (
        "POST",
        "/admin/keys/{id}/revoke",
        "",
        r#"{"reason": "documented"}"#,
        200,
    ),
    (
        "POST",
        "/admin/leak-check",
        "",
        r#"{"candidates": ["not a key"]}"#,
        200,
    ),
    (
        "POST",
        "/admin/leak-check",
        "",
        r#"{"candidates": "x"}"#,
        400,
    ),
    ("GET", "/admin/users", "", "", 200),
    ("POST", "/admin/users", "", NEW_USER, 201),
    ("POST", "/admin/users", "", NEW_USER, 400),
    (
        "PATCH",
        "/admin/users/{email}",
        "",
        r#"{"scopes": ["orders:read"]}"#,
        200,
    ),
    ("PATCH", "/admin/users/{email}", "", "{}", 400),
    (
        "PATCH",
        "/admin/users/{email}",
        "/admin/users/nobody@example.com",
        r#"{"scopes": null}"#,
        404,
    ),
    ("POST", "/admin/users/{email}/disable", "", "", 200),
    ("POST", "/admin/users/{email}/enable", "", "", 200),
    ("POST", "/admin/users/{email}/unlock", "", "", 200),
    (
        "POST",
        "/admin/users/{email}/password",
        "",
        r#"{"password": "{password} 2"}"#,
        200,
    ),
    (
        "POST",
        "/admin/users/{email}/password",
        "/admin/users/nobody@example.com/password",
        r#"{"password": "{password}"}"#,
        404,
    ),
    (
        "GET",
        "/admin/login-failures",
        "?email=documented@example.com",
        "",
        200,
    ),
    ("GET", "/admin/alerts", "?since=1d", "", 200),
    (
        "POST",
        "/admin/alerts/{id}/ack",
        "/admin/alerts/alr_unknown/ack",
        "",
        404,
    ),
    ("GET", "/admin/audit", "?limit=5", "", 200),
    ("GET", "/admin/audit/verify", "", "", 200),
    ("GET", "/admin/signing-keys", "", "", 200),
    ("POST", "/admin/signing-keys/rotate", "", "", 201),
    (
        "POST",
        "/admin/signing-keys/{id}/revoke",
        "/admin/signing-keys/sig_unknown/revoke",
        "",
        404,
    ),
];

/// Exercises every admin operation for the OpenAPI test: each answer must
/// have a status and body the document names.
pub async fn documented(app: &TestApp, doc: &mut crate::openapi::Document) {
    let admin = admin_session(app).await;
    let other = app.create_key(Environment::Production).await;
    app.create_user("nonadmin@example.com").await;
    let token = login_token(app, &other.key, "nonadmin@example.com").await;
    let keys = "/admin/keys";
    let forbidden = app
        .client
        .get(app.url(keys))
        .header("x-api-key", &other.key);
    doc.check(
        Method::GET,
        keys,
        forbidden.header("x-api-token", &token),
        403,
    )
    .await;
    doc.check(Method::GET, keys, app.client.get(app.url(keys)), 401)
        .await;
    let new_key = serde_json::from_str(NEW_KEY).unwrap();
    let created = admin
        .expect(app, Method::POST, keys, Some(new_key), 201)
        .await;
    let id = created["id"].as_str().unwrap();
    for (method, documented, path, body, status) in OPERATIONS {
        let path = if path.starts_with('/') {
            (*path).to_owned()
        } else {
            let template = documented
                .replace("{id}", id)
                .replace("{email}", "documented@example.com");
            format!("{template}{path}")
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let request = admin.request(app, method.clone(), &path);
        let request = if body.is_empty() {
            request
        } else {
            let body: Value = serde_json::from_str(&body.replace("{password}", PASSWORD)).unwrap();
            request.json(&body)
        };
        doc.check(method, documented, request, *status).await;
    }
}
