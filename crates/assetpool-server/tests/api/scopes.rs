//! Scopes (CONTRACT section 8) through the real server: what a login is
//! granted and says, what refresh keeps, what `/v1/resource`, introspection
//! and `/auth/verify` answer, and how narrowing a key or a user reaches live
//! tokens within a second on every server sharing the database.

use crate::helpers::{assert_error, Storage, TestApp, TestKey, PASSWORD};
use assetpool_core::store::ApiKeyUpdate;
use assetpool_core::{Environment, ScopeSet};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Response;
use serde_json::{json, Value};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(1);
const ALICE: &str = "alice@example.com";
const FORM: &str = "application/x-www-form-urlencoded";

fn set(text: &str) -> ScopeSet {
    ScopeSet::parse(text).unwrap()
}

/// The claims of `token`, read without checking anything.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Logs in (200 expected); the body.
async fn granted(app: &TestApp, key: &TestKey, scope: Option<&str>) -> Value {
    let response = app.login_with_scope(&key.key, ALICE, scope).await;
    assert_eq!(response.status(), 200, "login asking {scope:?}");
    response.json().await.unwrap()
}

fn token_of(body: &Value) -> String {
    body["accessToken"].as_str().unwrap().to_owned()
}

/// `GET /auth/verify` with `key` and `token`, `?query` appended.
async fn verify(app: &TestApp, key: &str, token: &str, query: &str) -> Response {
    app.client
        .get(app.url(&format!("/auth/verify{query}")))
        .header("x-api-key", key)
        .header("x-api-token", token)
        .send()
        .await
        .unwrap()
}

async fn resource_scopes(app: &TestApp, key: &str, token: &str) -> Value {
    let response = app.resource(key, token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["scopes"].clone()
}

/// Asserts a 403 `insufficient_scope` naming `required`.
async fn assert_insufficient(response: Response, required: &str) {
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(r#"Bearer realm="assetpool", error="insufficient_scope", scope="{required}""#)
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(!response.headers().contains_key("x-assetpool-scopes"));
    assert_error(response, 403, "insufficient_scope").await;
}

async fn introspected_scope(app: &TestApp, key: &str, token: &str) -> Value {
    let form = serde_urlencoded::to_string([("token", token)]).unwrap();
    let response = app
        .post_raw("/oauth/introspect", FORM, form)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    body["scope"].clone()
}

async fn oauth_token(app: &TestApp, key: &str, form: &str) -> Response {
    app.post_raw("/oauth/token", FORM, form.to_owned())
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

fn password_form(scope: Option<&str>) -> String {
    let mut fields = vec![
        ("grant_type", "password"),
        ("username", ALICE),
        ("password", PASSWORD),
    ];
    if let Some(scope) = scope {
        fields.push(("scope", scope));
    }
    serde_urlencoded::to_string(fields).unwrap()
}

crate::backend_tests! {
    /// The grant is the intersection of the restricted sets among key, user
    /// and request; it is the token's `scope` claim and the answer's
    /// `scope`; nothing restricted means no claim and no field.
    async fn a_login_is_granted_the_intersection_of_the_restricted_sets(backend) {
        let app = TestApp::spawn(backend).await;
        let unrestricted = app.create_key(Environment::Production).await;
        let orders = app
            .create_scoped_key(Environment::Production, Some("orders:read orders:write reports"))
            .await;
        app.create_scoped_user(ALICE, Some("orders:read orders:write admin")).await;

        let body = granted(&app, &orders, None).await;
        assert_eq!(body["scope"], "orders:read orders:write");
        assert_eq!(claims(&token_of(&body))["scope"], "orders:read orders:write");
        let body = granted(&app, &orders, Some("orders:read")).await;
        assert_eq!(body["scope"], "orders:read");
        assert_eq!(claims(&token_of(&body))["scope"], "orders:read");
        let body = granted(&app, &unrestricted, Some("admin")).await;
        assert_eq!(body["scope"], "admin");
        // Only the user restricts here.
        let body = granted(&app, &unrestricted, None).await;
        assert_eq!(body["scope"], "admin orders:read orders:write");
        // An empty scope parameter asks for nothing in particular.
        let body = granted(&app, &orders, Some("  ")).await;
        assert_eq!(body["scope"], "orders:read orders:write");

        // Nothing restricts: no claim, no field, and every requirement met.
        app.create_user("bob@example.com").await;
        let response = app.login(&unrestricted.key, "bob@example.com", PASSWORD).await;
        let body: Value = response.json().await.unwrap();
        assert!(body.get("scope").is_none(), "{body}");
        let token = token_of(&body);
        assert!(claims(&token).get("scope").is_none());
        let allowed = verify(&app, &unrestricted.key, &token, "?scope=anything+at:all").await;
        assert_eq!(allowed.status(), 200);
        assert!(!allowed.headers().contains_key("x-assetpool-scopes"));
        assert_eq!(resource_scopes(&app, &unrestricted.key, &token).await, Value::Null);
        assert_eq!(introspected_scope(&app, &unrestricted.key, &token).await, Value::Null);

        // Restricted sets with nothing in common: restricted to none.
        let disjoint = app
            .create_scoped_key(Environment::Production, Some("billing"))
            .await;
        let body = granted(&app, &disjoint, None).await;
        assert_eq!(body["scope"], "");
        let token = token_of(&body);
        assert_eq!(claims(&token)["scope"], "");
        assert_eq!(resource_scopes(&app, &disjoint.key, &token).await, json!([]));
        let allowed = verify(&app, &disjoint.key, &token, "").await;
        assert_eq!(allowed.status(), 200);
        assert_eq!(allowed.headers()["x-assetpool-scopes"], "");
        assert_insufficient(verify(&app, &disjoint.key, &token, "?scope=billing").await, "billing")
            .await;
    }

    /// A malformed scope, or one the key does not allow, is refused before
    /// anything is counted or hashed; one the user does not allow only with
    /// the right password (a wrong one is `invalid_credentials`, revealing
    /// nothing), and then the attempt is not a failure.
    async fn asking_outside_the_key_or_the_user_is_invalid_scope(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app
            .create_scoped_key(Environment::Production, Some("orders:read orders:write"))
            .await;
        app.create_scoped_user(ALICE, Some("orders:read")).await;
        for bad in ["Orders:Read", "orders:read,orders:write", "orders/read", &"x".repeat(65)] {
            let response = app.login_with_scope(&key.key, ALICE, Some(bad)).await;
            let body = assert_error(response, 400, "invalid_scope").await;
            assert!(!body["message"].as_str().unwrap().contains(bad), "{body}");
        }
        let outside_key = app.login_with_scope(&key.key, ALICE, Some("admin")).await;
        assert_error(outside_key, 400, "invalid_scope").await;
        assert!(app.admin.login_throttles(Some(ALICE)).await.unwrap().is_empty());

        let outside_user = app
            .login_with_scope(&key.key, ALICE, Some("orders:read orders:write"))
            .await;
        assert_error(outside_user, 400, "invalid_scope").await;
        assert!(
            app.admin.login_throttles(Some(ALICE)).await.unwrap().is_empty(),
            "a right password is no failure"
        );
        let wrong_password = app
            .client
            .post(app.url("/api/authentication/login"))
            .header("x-api-key", &key.key)
            .json(&json!({"username": ALICE, "password": "not the password at all", "scope": "orders:write"}))
            .send()
            .await
            .unwrap();
        assert_error(wrong_password, 401, "invalid_credentials").await;
        let unknown_user = app
            .login_with_scope(&key.key, "nobody@example.com", Some("orders:write"))
            .await;
        assert_error(unknown_user, 401, "invalid_credentials").await;
        // A bad key still comes first.
        let bad_key = app.login_with_scope("apk_prod_nothing", ALICE, Some("Bad")).await;
        assert_error(bad_key, 401, "invalid_api_key").await;
        assert_eq!(granted(&app, &key, Some("orders:read")).await["scope"], "orders:read");
    }

    /// `/oauth/token` takes the `scope` form field (RFC 6749 section 3.3),
    /// answers `scope`, refuses with the RFC's `invalid_scope`, and a refresh
    /// keeps the session's scopes (its own `scope` may only narrow them).
    async fn the_token_endpoint_grants_and_refreshes_scopes(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app
            .create_scoped_key(Environment::Production, Some("orders:read orders:write"))
            .await;
        app.create_user(ALICE).await;
        let response = oauth_token(&app, &key.key, &password_form(Some("admin"))).await;
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_scope", "{body}");
        assert!(body["error_description"].is_string());

        let response = oauth_token(&app, &key.key, &password_form(Some("orders:read orders:write"))).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read orders:write");
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let form = serde_urlencoded::to_string([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .unwrap();
        let body: Value = oauth_token(&app, &key.key, &form).await.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read orders:write", "kept");
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(claims(access)["scope"], "orders:read orders:write");
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let form = serde_urlencoded::to_string([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("scope", "orders:read admin"),
        ])
        .unwrap();
        let body: Value = oauth_token(&app, &key.key, &form).await.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read", "narrowed, never widened");
        // A malformed scope is refused before the refresh token is spent.
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let bad = serde_urlencoded::to_string([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("scope", "Orders"),
        ])
        .unwrap();
        let response = oauth_token(&app, &key.key, &bad).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_scope");
        let form = serde_urlencoded::to_string([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .unwrap();
        assert_eq!(oauth_token(&app, &key.key, &form).await.status(), 200);
    }

    /// A refresh keeps the session's grant, within the key's current scopes:
    /// narrowing the key narrows the next token, widening it never gives the
    /// session more than it was granted.
    async fn refresh_keeps_the_session_scopes_within_the_key(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app
            .create_scoped_key(Environment::Production, Some("a b c"))
            .await;
        app.create_user(ALICE).await;
        let body = granted(&app, &key, Some("a b")).await;
        let refreshed: Value = app
            .refresh(&key.key, body["refreshToken"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(refreshed["scope"], "a b");
        let narrow = ApiKeyUpdate {
            scopes: Some(Some(set("a c"))),
            ..ApiKeyUpdate::default()
        };
        app.admin.update_api_key(&key.id, narrow).await.unwrap();
        // Within a second the server knows the key's new scopes; refresh
        // (each refresh spends its token: keep the successor) until then.
        let started = std::time::Instant::now();
        let mut refresh = refreshed["refreshToken"].as_str().unwrap().to_owned();
        let narrowed = loop {
            let response = app.refresh(&key.key, &refresh).await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            if body["scope"] == "a" {
                break body;
            }
            assert_eq!(body["scope"], "a b");
            assert!(started.elapsed() < WITHIN, "still the old scopes");
            refresh = body["refreshToken"].as_str().unwrap().to_owned();
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let widen = ApiKeyUpdate {
            scopes: Some(None),
            ..ApiKeyUpdate::default()
        };
        app.admin.update_api_key(&key.id, widen).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let widened: Value = app
            .refresh(&key.key, narrowed["refreshToken"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(widened["scope"], "a b", "the session's grant, no more");
    }

    /// `/auth/verify?scope=` and `x-assetpool-required-scope` need every
    /// scope named (both: all of them); allowed answers carry
    /// `x-assetpool-scopes`, refusals name the requirement. `/v1/resource`
    /// and introspection answer the request's scopes.
    async fn forward_auth_requires_scopes(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app
            .create_scoped_key(Environment::Production, Some("orders:read orders:write"))
            .await;
        app.create_user(ALICE).await;
        let token = token_of(&granted(&app, &key, Some("orders:read")).await);
        let allowed = verify(&app, &key.key, &token, "?scope=orders:read").await;
        assert_eq!(allowed.status(), 200);
        assert_eq!(allowed.headers()["x-assetpool-scopes"], "orders:read");
        assert_eq!(allowed.headers()["cache-control"], "no-store");
        assert_eq!(verify(&app, &key.key, &token, "").await.status(), 200);
        assert_insufficient(
            verify(&app, &key.key, &token, "?scope=orders:read+orders:write").await,
            "orders:read orders:write",
        )
        .await;
        let by_header = app
            .client
            .get(app.url("/auth/verify"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("x-assetpool-required-scope", "orders:write")
            .send()
            .await
            .unwrap();
        assert_insufficient(by_header, "orders:write").await;
        let both = app
            .client
            .get(app.url("/auth/verify?scope=orders:read"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .header("x-assetpool-required-scope", "orders:write")
            .send()
            .await
            .unwrap();
        assert_insufficient(both, "orders:read orders:write").await;
        // Any method; under Envoy's path suffix only the header counts.
        let envoy = app
            .client
            .post(app.url("/auth/verify/v1/orders?scope=orders:write"))
            .header("x-api-key", &key.key)
            .header("x-api-token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(envoy.status(), 200);
        // Credentials are checked first; a bad requirement is a bad request.
        let missing = app
            .client
            .get(app.url("/auth/verify?scope=orders:write"))
            .header("x-api-key", &key.key)
            .send()
            .await
            .unwrap();
        assert_error(missing, 401, "missing_token").await;
        let malformed = verify(&app, &key.key, &token, "?scope=Orders").await;
        assert_error(malformed, 400, "invalid_request").await;

        assert_eq!(resource_scopes(&app, &key.key, &token).await, json!(["orders:read"]));
        assert_eq!(introspected_scope(&app, &key.key, &token).await, "orders:read");
    }

    /// Narrowing a key's scopes reaches its live tokens within a second on
    /// every server sharing the database; widening it never widens them.
    async fn narrowing_a_key_reaches_live_tokens_on_every_node(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let key = first
            .create_scoped_key(Environment::Production, Some("orders:read orders:write"))
            .await;
        first.create_user(ALICE).await;
        let token = token_of(&granted(&first, &key, None).await);
        for node in [&first, &second] {
            let allowed = verify(node, &key.key, &token, "?scope=orders:write").await;
            assert_eq!(allowed.status(), 200);
            assert_eq!(allowed.headers()["x-assetpool-scopes"], "orders:read orders:write");
        }
        let narrow = ApiKeyUpdate {
            scopes: Some(Some(set("orders:read"))),
            ..ApiKeyUpdate::default()
        };
        first.admin.update_api_key(&key.id, narrow).await.unwrap();
        let started = std::time::Instant::now();
        for node in [&first, &second] {
            node.eventually(WITHIN, || async {
                verify(node, &key.key, &token, "?scope=orders:write").await.status() == 403
            })
            .await;
        }
        assert!(started.elapsed() < WITHIN + Duration::from_millis(500));
        for node in [&first, &second] {
            assert_insufficient(
                verify(node, &key.key, &token, "?scope=orders:write").await,
                "orders:write",
            )
            .await;
            let allowed = verify(node, &key.key, &token, "?scope=orders:read").await;
            assert_eq!(allowed.headers()["x-assetpool-scopes"], "orders:read");
            assert_eq!(resource_scopes(node, &key.key, &token).await, json!(["orders:read"]));
        }
        let widen = ApiKeyUpdate {
            scopes: Some(Some(set("orders:read orders:write admin"))),
            ..ApiKeyUpdate::default()
        };
        first.admin.update_api_key(&key.id, widen).await.unwrap();
        for node in [&first, &second] {
            node.eventually(WITHIN, || async {
                verify(node, &key.key, &token, "?scope=orders:write").await.status() == 200
            })
            .await;
            assert_insufficient(verify(node, &key.key, &token, "?scope=admin").await, "admin")
                .await;
        }
    }

    /// Narrowing a user's scopes revokes, within a second on every server,
    /// the user's sessions granted a scope outside the new set; sessions
    /// within it go on.
    async fn narrowing_a_user_revokes_sessions_outside_the_new_set(backend) {
        let first = TestApp::spawn(backend).await;
        let second = TestApp::start(first.database_url.clone(), Storage::None, |_| {}).await;
        let key = first.create_key(Environment::Production).await;
        first.create_scoped_user(ALICE, Some("reports orders:read")).await;
        let wide = granted(&first, &key, None).await;
        let narrow = granted(&first, &key, Some("reports")).await;
        let wide_refresh = wide["refreshToken"].as_str().unwrap().to_owned();
        let (wide, narrow_token) = (token_of(&wide), token_of(&narrow));
        let changed = first
            .admin
            .set_user_scopes(ALICE, Some(set("reports")))
            .await
            .unwrap();
        assert_eq!(changed.sessions_revoked, 1);
        assert_eq!(changed.user.scopes, Some(vec!["reports".to_owned()]));
        for node in [&first, &second] {
            node.eventually(WITHIN, || async {
                node.resource(&key.key, &wide).await.status() == 401
            })
            .await;
            assert_error(node.resource(&key.key, &wide).await, 401, "token_revoked").await;
            assert_eq!(node.resource(&key.key, &narrow_token).await.status(), 200);
        }
        let refused = first.refresh(&key.key, &wide_refresh).await;
        assert_error(refused, 401, "invalid_refresh_token").await;
        assert_eq!(granted(&second, &key, None).await["scope"], "reports");
        let response = second.login_with_scope(&key.key, ALICE, Some("orders:read")).await;
        assert_error(response, 400, "invalid_scope").await;
    }
}

mod admin_api {
    //! Scopes through the admin API: set on creation, replaced or removed by
    //! `PATCH`, refused when malformed, sorted in every answer, audited with
    //! the admin's identity; documented in the OpenAPI document.

    use crate::admin::admin_session;
    use crate::helpers::{Backend, TestApp, PASSWORD};
    use reqwest::Method;
    use serde_json::{json, Value};

    async fn send(
        app: &TestApp,
        admin: &crate::admin::AdminSession,
        method: Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let response = admin
            .request(app, method, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    crate::backend_tests! {
        async fn keys_and_users_get_and_change_scopes(backend) {
            let app = TestApp::spawn(backend).await;
            let admin = admin_session(&app).await;
            let (status, created) = send(
                &app,
                &admin,
                Method::POST,
                "/admin/keys",
                json!({"name": "orders", "environment": "production",
                       "scopes": ["orders:write", "orders:read", "orders:read"]}),
            )
            .await;
            assert_eq!(status, 201, "{created}");
            assert_eq!(created["scopes"], json!(["orders:read", "orders:write"]));
            let id = created["id"].as_str().unwrap().to_owned();
            let path = format!("/admin/keys/{id}");
            let (_, shown) = send(&app, &admin, Method::GET, &path, Value::Null).await;
            assert_eq!(shown["scopes"], json!(["orders:read", "orders:write"]));
            let (status, patched) =
                send(&app, &admin, Method::PATCH, &path, json!({"scopes": ["orders:read"]})).await;
            assert_eq!(status, 200, "{patched}");
            assert_eq!(patched["scopes"], json!(["orders:read"]));
            let (_, renamed) =
                send(&app, &admin, Method::PATCH, &path, json!({"name": "renamed"})).await;
            assert_eq!(renamed["scopes"], json!(["orders:read"]), "kept");
            let (_, cleared) = send(&app, &admin, Method::PATCH, &path, json!({"scopes": null})).await;
            assert_eq!(cleared["scopes"], Value::Null);
            let (_, none) = send(&app, &admin, Method::PATCH, &path, json!({"scopes": []})).await;
            assert_eq!(none["scopes"], json!([]));
            for bad in [json!(["Orders"]), json!(["a b"]), json!([""]), json!("orders:read")] {
                let (status, body) =
                    send(&app, &admin, Method::PATCH, &path, json!({"scopes": bad})).await;
                assert_eq!((status, body["error"].clone()), (400, json!("invalid_request")), "{bad}");
            }
            let (status, body) = send(
                &app,
                &admin,
                Method::POST,
                "/admin/keys",
                json!({"name": "bad", "environment": "production", "scopes": ["UPPER"]}),
            )
            .await;
            assert_eq!((status, body["error"].clone()), (400, json!("invalid_request")));
            let (_, unrestricted) = send(
                &app,
                &admin,
                Method::POST,
                "/admin/keys",
                json!({"name": "all", "environment": "production"}),
            )
            .await;
            assert_eq!(unrestricted["scopes"], Value::Null);
            assert!(unrestricted.as_object().unwrap().contains_key("scopes"));

            let (status, user) = send(
                &app,
                &admin,
                Method::POST,
                "/admin/users",
                json!({"email": "carol@example.com", "password": PASSWORD, "scopes": ["reports"]}),
            )
            .await;
            assert_eq!(status, 201, "{user}");
            assert_eq!(user["scopes"], json!(["reports"]));
            let path = "/admin/users/carol@example.com";
            let (status, changed) =
                send(&app, &admin, Method::PATCH, path, json!({"scopes": ["reports", "audit"]})).await;
            assert_eq!(status, 200, "{changed}");
            assert_eq!(changed["scopes"], json!(["audit", "reports"]));
            let (_, changed) = send(&app, &admin, Method::PATCH, path, json!({"scopes": null})).await;
            assert_eq!(changed["scopes"], Value::Null);
            let (status, body) = send(&app, &admin, Method::PATCH, path, json!({})).await;
            assert_eq!((status, body["error"].clone()), (400, json!("invalid_request")));
            let (status, body) =
                send(&app, &admin, Method::PATCH, path, json!({"scopes": ["x y"]})).await;
            assert_eq!((status, body["error"].clone()), (400, json!("invalid_request")));
            let (status, _) = send(
                &app,
                &admin,
                Method::PATCH,
                "/admin/users/nobody@example.com",
                json!({"scopes": ["a"]}),
            )
            .await;
            assert_eq!(status, 404);
            let (_, listed) = send(&app, &admin, Method::GET, "/admin/users", Value::Null).await;
            let carol = listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|user| user["email"] == "carol@example.com")
                .unwrap();
            assert_eq!(carol["scopes"], Value::Null);

            let (_, audit) = send(&app, &admin, Method::GET, "/admin/audit?limit=500", Value::Null).await;
            let entries = audit["items"].as_array().unwrap();
            let entry = |action: &str, target: &str, scopes: Value| {
                entries.iter().any(|entry| {
                    entry["action"] == action
                        && entry["target"] == target
                        && entry["actor"] == format!("admin:{}", crate::admin::ADMIN_EMAIL)
                        && entry["outcome"] == "success"
                        && entry["detail"]["scopes"] == scopes
                })
            };
            assert!(entry("key.create", &id, json!(["orders:read", "orders:write"])), "{audit}");
            assert!(entry("key.update", &id, json!(["orders:read"])), "{audit}");
            assert!(entry("key.update", &id, Value::Null), "{audit}");
            assert!(entry("user.create", "carol@example.com", json!(["reports"])), "{audit}");
            assert!(entry("user.update", "carol@example.com", json!(["audit", "reports"])), "{audit}");
            assert!(entry("user.update", "carol@example.com", Value::Null), "{audit}");
        }
    }

    #[tokio::test]
    async fn the_openapi_document_describes_scopes() {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let document: Value = app.get_json("/openapi.json").await;
        let schemas = &document["components"]["schemas"];
        for (schema, property) in [
            ("LoginRequest", "scope"),
            ("TokenResponse", "scope"),
            ("OAuthTokenResponse", "scope"),
            ("IntrospectionResponse", "scope"),
            ("ResourceResponse", "scopes"),
            ("ApiKeyResponse", "scopes"),
            ("ApiKeyCreatedResponse", "scopes"),
            ("UserResponse", "scopes"),
            ("AdminCreateKeyRequest", "scopes"),
            ("AdminUpdateKeyRequest", "scopes"),
            ("AdminCreateUserRequest", "scopes"),
            ("AdminUpdateUserRequest", "scopes"),
        ] {
            assert!(
                schemas[schema]["properties"][property].is_object(),
                "{schema}.{property} is not documented"
            );
        }
        // An open string: the known codes are its examples.
        assert_eq!(schemas["ErrorCode"]["type"], "string");
        assert!(schemas["ErrorCode"].get("enum").is_none());
        let codes = schemas["ErrorCode"]["examples"].as_array().unwrap();
        assert!(codes.contains(&json!("invalid_scope")));
        assert!(codes.contains(&json!("insufficient_scope")));
        let verify = &document["paths"]["/auth/verify"]["get"];
        assert!(verify["responses"]["403"].is_object());
        let headers = &verify["responses"]["200"]["headers"];
        assert!(headers["x-assetpool-scopes"].is_object(), "{headers}");
        let patch_user = &document["paths"]["/admin/users/{email}"]["patch"];
        assert!(patch_user["requestBody"].is_object());
        // scopes_supported is not claimed: scopes are whatever keys and users name.
        let metadata: Value = app
            .get_json("/.well-known/oauth-authorization-server")
            .await;
        assert!(metadata.get("scopes_supported").is_none());
    }
}
