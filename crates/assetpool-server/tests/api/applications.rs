//! Applications as records over HTTP: the admin API (`/admin/applications`,
//! members), its audit entries and refusals, and the members-only rule at
//! login, refresh and on live sessions.

use crate::backend_tests;
use crate::helpers::{assert_error, TestApp, TestKey, PASSWORD};
use assetpool_core::ids::ApplicationId;
use assetpool_core::store::ApplicationUpdate;
use assetpool_core::{ApplicationRole, Environment};
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;

const ADMIN_EMAIL: &str = "apps-admin@example.com";
const WRONG: &str = "not the password, but long";
const FORM: &str = "application/x-www-form-urlencoded";

/// An admin logged in through a production key of an application of its own.
struct Admin {
    key: TestKey,
    token: String,
}

async fn admin(app: &TestApp) -> Admin {
    let key = app.create_key(Environment::Production).await;
    app.admin
        .create_user(ADMIN_EMAIL, SecretString::from(PASSWORD), true)
        .await
        .unwrap();
    let token = access_token(app.login(&key.key, ADMIN_EMAIL, PASSWORD).await).await;
    Admin { key, token }
}

async fn access_token(response: Response) -> String {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

impl Admin {
    fn request(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        app.client
            .request(method, app.url(path))
            .header("x-api-key", &self.key.key)
            .header("authorization", format!("Bearer {}", self.token))
    }

    /// Sends (with `body` as JSON, if any) and expects `status`; returns the body.
    async fn expect(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let request = self.request(app, method.clone(), path);
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
}

fn names(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

/// A members-only application with `members`, a production key in it, and
/// each of `users` created.
async fn members_only_application(
    app: &TestApp,
    members: &[(&str, ApplicationRole)],
    others: &[&str],
) -> TestKey {
    let application = app.admin.create_application("shop", true).await.unwrap();
    let id = ApplicationId::from(application.id);
    for (email, role) in members {
        app.create_user(email).await;
        app.admin
            .add_application_member(&id, email, *role)
            .await
            .unwrap();
    }
    for email in others {
        app.create_user(email).await;
    }
    app.create_key_in(Environment::Production, Some(&id)).await
}

async fn token_request(app: &TestApp, key: &str, form: String) -> (u16, String) {
    let response = app
        .post_raw("/oauth/token", FORM, form)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn password_form(email: &str, password: &str) -> String {
    serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", email),
        ("password", password),
    ])
    .unwrap()
}

async fn refresh_status(app: &TestApp, key: &str, refresh: &str) -> (u16, Value) {
    let response = app.refresh(key, refresh).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Logs in and returns (access token, refresh token).
async fn tokens(app: &TestApp, key: &str, email: &str) -> (String, String) {
    let response = app.login(key, email, PASSWORD).await;
    assert_eq!(response.status(), 200, "{email} logs in");
    let body: Value = response.json().await.unwrap();
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// Waits until the token is refused with `token_revoked`; returns how long it took.
async fn until_revoked(app: &TestApp, key: &str, token: &str) -> Duration {
    app.eventually(Duration::from_secs(3), || async {
        app.resource(key, token).await.status() == 401
    })
    .await
}

backend_tests! {
    async fn admins_create_list_show_and_change_applications(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin(&app).await;
        let created = admin
            .expect(&app, Method::POST, "/admin/applications", Some(json!({"name": " shop "})), 201)
            .await;
        assert_eq!(names(&created), ["createdAt", "id", "members", "membersOnly", "name"]);
        assert_eq!(created["name"], "shop");
        assert_eq!(created["membersOnly"], false);
        assert_eq!(created["members"], json!([]));
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("app_"), "{id}");
        let path = format!("/admin/applications/{id}");
        assert_eq!(admin.expect(&app, Method::GET, &path, None, 200).await, created);

        let restricted = json!({"name": "vault", "membersOnly": true});
        let vault = admin
            .expect(&app, Method::POST, "/admin/applications", Some(restricted), 201)
            .await;
        assert_eq!(vault["membersOnly"], true);

        // A key may be issued in it, and names it.
        let key = json!({"name": "shop key", "environment": "production", "application": id});
        let issued = admin.expect(&app, Method::POST, "/admin/keys", Some(key), 201).await;
        assert_eq!(issued["application"], id.as_str());
        let unknown = json!({"name": "x", "environment": "production", "application": "app_unknown"});
        let refused = admin.request(&app, Method::POST, "/admin/keys").json(&unknown);
        assert_error(refused.send().await.unwrap(), 404, "not_found").await;

        let changed = admin
            .expect(&app, Method::PATCH, &path, Some(json!({"name": "shop v2"})), 200)
            .await;
        assert_eq!((changed["name"].as_str(), changed["membersOnly"].as_bool()), (Some("shop v2"), Some(false)));
        let changed = admin
            .expect(&app, Method::PATCH, &path, Some(json!({"membersOnly": true})), 200)
            .await;
        assert_eq!((changed["name"].as_str(), changed["membersOnly"].as_bool()), (Some("shop v2"), Some(true)));
        let unchanged = admin.expect(&app, Method::PATCH, &path, Some(json!({})), 200).await;
        assert_eq!(unchanged, changed);

        // Pages, oldest first: the admin's own key made the first application.
        let first = admin
            .expect(&app, Method::GET, "/admin/applications?limit=2", None, 200)
            .await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let cursor = first["nextCursor"].as_str().unwrap();
        let second = admin
            .expect(&app, Method::GET, &format!("/admin/applications?limit=2&cursor={cursor}"), None, 200)
            .await;
        assert_eq!(second["nextCursor"], Value::Null);
        let listed: Vec<Value> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["items"].as_array().unwrap())
            .cloned()
            .collect();
        // Created at the same instant (the test's clock stands still), they
        // come in id order; each once.
        let ids: Vec<&str> = listed.iter().map(|item| item["id"].as_str().unwrap()).collect();
        let mut expected = vec![admin.key.application.as_str(), id.as_str(), vault["id"].as_str().unwrap()];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        assert!(listed.contains(&changed) && listed.contains(&vault));
    }

    async fn admins_add_change_and_remove_members(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin(&app).await;
        app.create_user("alice@example.com").await;
        app.create_user("bob@example.com").await;
        let created = admin
            .expect(&app, Method::POST, "/admin/applications", Some(json!({"name": "shop"})), 201)
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let members = format!("/admin/applications/{id}/members");
        let added = admin
            .expect(&app, Method::POST, &members, Some(json!({"email": "Bob@Example.com"})), 200)
            .await;
        assert_eq!(added["members"], json!([{"email": "bob@example.com", "role": "member"}]));
        admin
            .expect(&app, Method::POST, &members, Some(json!({"email": "alice@example.com", "role": "member"})), 200)
            .await;
        let promoted = admin
            .expect(&app, Method::POST, &members, Some(json!({"email": "alice@example.com", "role": "owner"})), 200)
            .await;
        assert_eq!(
            promoted["members"],
            json!([
                {"email": "alice@example.com", "role": "owner"},
                {"email": "bob@example.com", "role": "member"}
            ])
        );
        let removed = admin
            .expect(&app, Method::DELETE, &format!("{members}/bob@example.com"), None, 200)
            .await;
        assert_eq!(removed["members"], json!([{"email": "alice@example.com", "role": "owner"}]));
        let shown = admin.expect(&app, Method::GET, &format!("/admin/applications/{id}"), None, 200).await;
        assert_eq!(shown, removed);

        // Every change is in the audit log, as done by the admin.
        let audit = admin.expect(&app, Method::GET, "/admin/audit?limit=500", None, 200).await;
        let entries = audit["items"].as_array().unwrap();
        for (action, detail) in [
            ("application.create", json!({"name": "shop", "membersOnly": false})),
            ("application.add_member", json!({"email": "bob@example.com", "role": "member"})),
            ("application.add_member", json!({"email": "alice@example.com", "role": "owner"})),
            ("application.remove_member", json!({"email": "bob@example.com"})),
        ] {
            let entry = entries
                .iter()
                .find(|entry| entry["action"] == action && entry["target"] == id.as_str() && entry["detail"] == detail)
                .unwrap_or_else(|| panic!("no {action} {detail} in {entries:?}"));
            assert_eq!(entry["actor"], format!("admin:{ADMIN_EMAIL}"));
            assert_eq!(entry["outcome"], "success");
        }
    }

    async fn unknown_applications_users_and_members_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin(&app).await;
        app.create_user("alice@example.com").await;
        let created = admin
            .expect(&app, Method::POST, "/admin/applications", Some(json!({"name": "shop"})), 201)
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let members = format!("/admin/applications/{id}/members");
        let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
            (Method::GET, "/admin/applications/app_unknown".into(), None, 404, "not_found"),
            (Method::PATCH, "/admin/applications/app_unknown".into(), Some(json!({"name": "x"})), 404, "not_found"),
            (Method::POST, "/admin/applications/app_unknown/members".into(), Some(json!({"email": "alice@example.com"})), 404, "not_found"),
            (Method::DELETE, "/admin/applications/app_unknown/members/alice@example.com".into(), None, 404, "not_found"),
            (Method::POST, members.clone(), Some(json!({"email": "nobody@example.com"})), 404, "not_found"),
            (Method::DELETE, format!("{members}/nobody@example.com"), None, 404, "not_found"),
            (Method::DELETE, format!("{members}/alice@example.com"), None, 404, "not_found"),
            (Method::POST, members.clone(), Some(json!({"email": "alice@example.com", "role": "admin"})), 400, "invalid_request"),
            (Method::POST, members.clone(), Some(json!({"role": "owner"})), 400, "invalid_request"),
            (Method::POST, "/admin/applications".into(), Some(json!({"name": "  "})), 400, "invalid_request"),
            (Method::POST, "/admin/applications".into(), Some(json!({"name": "x", "membersOnly": "yes"})), 400, "invalid_request"),
            (Method::PATCH, format!("/admin/applications/{id}"), Some(json!({"name": "x".repeat(201)})), 400, "invalid_request"),
            (Method::GET, "/admin/applications?limit=0".into(), None, 400, "invalid_request"),
            (Method::GET, "/admin/applications?cursor=nonsense".into(), None, 400, "invalid_request"),
        ];
        for (method, path, body, status, code) in cases {
            let request = admin.request(&app, method.clone(), &path);
            let request = match &body {
                Some(body) => request.json(body),
                None => request,
            };
            let refused = assert_error(request.send().await.unwrap(), status, code).await;
            // No message echoes what was sent.
            assert!(!refused["message"].as_str().unwrap().contains("nobody"), "{method} {path}: {refused}");
        }
        // The application is unchanged, and the failures are audited.
        assert_eq!(admin.expect(&app, Method::GET, &format!("/admin/applications/{id}"), None, 200).await, created);
        let audit = admin.expect(&app, Method::GET, "/admin/audit?limit=500", None, 200).await;
        let failures = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["action"].as_str().unwrap_or_default().starts_with("application.") && entry["outcome"] == "failure")
            .count();
        assert!(failures >= 8, "{failures} failures audited");
    }

    async fn only_admins_manage_applications(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("alice@example.com").await;
        let alice = access_token(app.login(&key.key, "alice@example.com", PASSWORD).await).await;
        let id = key.application.as_str();
        let routes = [
            (Method::GET, "/admin/applications".to_owned()),
            (Method::POST, "/admin/applications".to_owned()),
            (Method::GET, format!("/admin/applications/{id}")),
            (Method::PATCH, format!("/admin/applications/{id}")),
            (Method::POST, format!("/admin/applications/{id}/members")),
            (Method::DELETE, format!("/admin/applications/{id}/members/alice@example.com")),
        ];
        for (method, path) in routes {
            let request = app
                .client
                .request(method.clone(), app.url(&path))
                .header("x-api-key", &key.key)
                .header("x-api-token", &alice);
            let request = if method == Method::GET || method == Method::DELETE {
                request
            } else {
                request.json(&json!({"name": "x", "email": "alice@example.com", "membersOnly": true}))
            };
            assert_error(request.send().await.unwrap(), 403, "forbidden").await;
            let anonymous = app.client.request(method, app.url(&path)).header("x-api-key", &key.key);
            assert_error(anonymous.send().await.unwrap(), 401, "missing_token").await;
        }
        let application = app.admin.application(&key.application).await.unwrap();
        assert!(!application.members_only);
        assert!(application.members.is_empty());
    }

    async fn members_only_refuses_outsiders_exactly_as_a_wrong_password(backend) {
        let app = TestApp::spawn(backend).await;
        let key = members_only_application(
            &app,
            &[("owner@example.com", ApplicationRole::Owner), ("member@example.com", ApplicationRole::Member)],
            &["outsider@example.com"],
        )
        .await;
        // Members of either role log in.
        tokens(&app, &key.key, "owner@example.com").await;
        tokens(&app, &key.key, "member@example.com").await;
        // An outsider with the right password gets what a wrong password gets.
        let outsider = app.login(&key.key, "outsider@example.com", PASSWORD).await;
        let outsider_headers = outsider.headers().clone();
        let outsider = assert_error(outsider, 401, "invalid_credentials").await;
        let wrong = app.login(&key.key, "member@example.com", WRONG).await;
        assert_eq!(wrong.headers()["cache-control"], outsider_headers["cache-control"]);
        let wrong = assert_error(wrong, 401, "invalid_credentials").await;
        assert_eq!(outsider, wrong);
        let unknown = assert_error(app.login(&key.key, "nobody@example.com", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(outsider, unknown);
        // The same on /oauth/token: invalid_grant, with the same body.
        let outsider = token_request(&app, &key.key, password_form("outsider@example.com", PASSWORD)).await;
        let wrong = token_request(&app, &key.key, password_form("member@example.com", WRONG)).await;
        assert_eq!(outsider.0, 400);
        assert!(outsider.1.contains("invalid_grant"), "{}", outsider.1);
        assert_eq!(outsider, wrong);
        let member = token_request(&app, &key.key, password_form("member@example.com", PASSWORD)).await;
        assert_eq!(member.0, 200, "{}", member.1);
        // The outsider logs in through a key of an open application.
        let open = app.create_key(Environment::Production).await;
        tokens(&app, &open.key, "outsider@example.com").await;
    }

    async fn outsiders_count_as_failed_logins(backend) {
        let app = TestApp::spawn(backend).await;
        let key = members_only_application(&app, &[("member@example.com", ApplicationRole::Member)], &["outsider@example.com"]).await;
        for _ in 0..5 {
            assert_error(app.login(&key.key, "outsider@example.com", PASSWORD).await, 401, "invalid_credentials").await;
        }
        let counted = app.admin.login_throttles(Some("outsider@example.com")).await.unwrap();
        assert!(
            counted.iter().any(|entry| entry.counter.failures == 5),
            "{counted:?}"
        );
        // Over the pair's limit: throttled, as after five wrong passwords.
        assert_error(app.login(&key.key, "outsider@example.com", PASSWORD).await, 429, "too_many_attempts").await;
    }

    async fn removing_a_member_ends_their_sessions_and_refreshes(backend) {
        let app = TestApp::spawn(backend).await;
        let key = members_only_application(
            &app,
            &[("alice@example.com", ApplicationRole::Member), ("bob@example.com", ApplicationRole::Owner)],
            &[],
        )
        .await;
        let (alice_access, alice_refresh) = tokens(&app, &key.key, "alice@example.com").await;
        let (bob_access, _) = tokens(&app, &key.key, "bob@example.com").await;
        assert_eq!(app.resource(&key.key, &alice_access).await.status(), 200);
        let admin = admin(&app).await;
        let path = format!("/admin/applications/{}/members/alice@example.com", key.application);
        admin.expect(&app, Method::DELETE, &path, None, 200).await;
        let took = until_revoked(&app, &key.key, &alice_access).await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert_error(app.resource(&key.key, &alice_access).await, 401, "token_revoked").await;
        let (status, body) = refresh_status(&app, &key.key, &alice_refresh).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_refresh_token")));
        assert_error(app.login(&key.key, "alice@example.com", PASSWORD).await, 401, "invalid_credentials").await;
        // Bob, still a member, keeps his session.
        assert_eq!(app.resource(&key.key, &bob_access).await.status(), 200);
        // Added back, Alice logs in again.
        app.admin
            .add_application_member(&key.application, "alice@example.com", ApplicationRole::Member)
            .await
            .unwrap();
        tokens(&app, &key.key, "alice@example.com").await;
    }

    async fn switching_members_only_on_ends_outsiders_sessions(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        app.create_user("member@example.com").await;
        app.create_user("outsider@example.com").await;
        app.admin
            .add_application_member(&key.application, "member@example.com", ApplicationRole::Member)
            .await
            .unwrap();
        let (member_access, member_refresh) = tokens(&app, &key.key, "member@example.com").await;
        let (outsider_access, outsider_refresh) = tokens(&app, &key.key, "outsider@example.com").await;
        let update = ApplicationUpdate { members_only: Some(true), ..ApplicationUpdate::default() };
        app.admin.update_application(&key.application, update).await.unwrap();
        let took = until_revoked(&app, &key.key, &outsider_access).await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        let (status, body) = refresh_status(&app, &key.key, &outsider_refresh).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_refresh_token")));
        assert_eq!(app.resource(&key.key, &member_access).await.status(), 200);
        let (status, _) = refresh_status(&app, &key.key, &member_refresh).await;
        assert_eq!(status, 200);
        // Switched off again, anyone logs in.
        let update = ApplicationUpdate { members_only: Some(false), ..ApplicationUpdate::default() };
        app.admin.update_application(&key.application, update).await.unwrap();
        tokens(&app, &key.key, "outsider@example.com").await;
    }
}

/// (method, documented path, path to use (`{id}` and `{email}` filled in), body, status).
const OPERATIONS: &[(&str, &str, &str, &str, u16)] = &[
    (
        "GET",
        "/admin/applications",
        "/admin/applications?limit=1",
        "",
        200,
    ),
    (
        "GET",
        "/admin/applications",
        "/admin/applications?limit=0",
        "",
        400,
    ),
    (
        "POST",
        "/admin/applications",
        "/admin/applications",
        r#"{"name": "documented 2", "membersOnly": true}"#,
        201,
    ),
    (
        "POST",
        "/admin/applications",
        "/admin/applications",
        r#"{"name": ""}"#,
        400,
    ),
    (
        "GET",
        "/admin/applications/{id}",
        "/admin/applications/{id}",
        "",
        200,
    ),
    (
        "GET",
        "/admin/applications/{id}",
        "/admin/applications/app_unknown",
        "",
        404,
    ),
    (
        "PATCH",
        "/admin/applications/{id}",
        "/admin/applications/{id}",
        r#"{"membersOnly": true}"#,
        200,
    ),
    (
        "PATCH",
        "/admin/applications/{id}",
        "/admin/applications/app_unknown",
        "{}",
        404,
    ),
    (
        "POST",
        "/admin/applications/{id}/members",
        "/admin/applications/{id}/members",
        r#"{"email": "{email}", "role": "owner"}"#,
        200,
    ),
    (
        "POST",
        "/admin/applications/{id}/members",
        "/admin/applications/{id}/members",
        r#"{"email": "{email}", "role": "boss"}"#,
        400,
    ),
    (
        "POST",
        "/admin/applications/{id}/members",
        "/admin/applications/{id}/members",
        r#"{"email": "nobody@example.com"}"#,
        404,
    ),
    (
        "DELETE",
        "/admin/applications/{id}/members/{email}",
        "/admin/applications/{id}/members/{email}",
        "",
        200,
    ),
    (
        "DELETE",
        "/admin/applications/{id}/members/{email}",
        "/admin/applications/{id}/members/{email}",
        "",
        404,
    ),
];

/// Exercises every application operation for the OpenAPI test: each answer
/// must have a status and body the document names.
pub async fn documented(app: &TestApp, doc: &mut crate::openapi::Document) {
    const MEMBER: &str = "documented-member@example.com";
    let admin = admin(app).await;
    app.create_user(MEMBER).await;
    let created = app
        .admin
        .create_application("documented", false)
        .await
        .unwrap();
    for (method, documented, path, body, status) in OPERATIONS {
        let fill = |text: &str| text.replace("{id}", &created.id).replace("{email}", MEMBER);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let request = admin.request(app, method.clone(), &fill(path));
        let request = if body.is_empty() {
            request
        } else {
            request.json(&serde_json::from_str::<Value>(&fill(body)).unwrap())
        };
        doc.check(method, documented, request, *status).await;
    }
}
