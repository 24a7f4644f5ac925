//! No text a client sends may hold a control character (NUL, escape, line
//! break, ...): every string field of every JSON body and form the OpenAPI
//! document describes, every path parameter and query parameter is refused
//! with 400 `invalid_request`, alike on SQLite and PostgreSQL (which cannot
//! store NUL at all), and never answered with a 500.

use crate::admin::admin_session;
use crate::backend_tests;
use crate::helpers::TestApp;
use assetpool_core::Clock as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// Values a control character can hide in, as JSON strings.
const CONTROLLED: [&str; 4] = ["a\u{0}b", "x\u{1b}[2Jy", "line\nbreak", "c1\u{85}"];
/// The same, percent-encoded for paths, queries and forms.
const CONTROLLED_ENCODED: [&str; 3] = ["a%00b", "x%1B%5B2Jy", "c1%C2%85"];

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(document, &document["components"]["schemas"][name])
        }
        None => match schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
            // `Option<T>` is `oneOf: [null, T]`: the non-null choice.
            Some(choices) => choices
                .iter()
                .map(|choice| resolve(document, choice))
                .find(|choice| choice["type"] != "null")
                .unwrap_or(schema),
            None => schema,
        },
    }
}

fn has_type(schema: &Value, name: &str) -> bool {
    match &schema["type"] {
        Value::String(single) => single == name,
        Value::Array(names) => names.iter().any(|entry| entry == name),
        _ => false,
    }
}

/// A value of the right type for `schema` (a plausible one for strings).
fn plausible(document: &Value, schema: &Value) -> Value {
    let schema = resolve(document, schema);
    if let Some(first) = schema["enum"].as_array().and_then(|values| values.first()) {
        return first.clone();
    }
    if has_type(schema, "string") {
        json!("production")
    } else if has_type(schema, "integer") || has_type(schema, "number") {
        json!(60)
    } else if has_type(schema, "boolean") {
        json!(false)
    } else if has_type(schema, "array") {
        json!([])
    } else {
        json!({})
    }
}

/// The request bodies of `schema` with one string property (at any depth of
/// nested objects) set to `bad`, the others plausible.
fn bodies_with(document: &Value, schema: &Value, bad: &str) -> Vec<(String, Value)> {
    let schema = resolve(document, schema);
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let base: Map<String, Value> = properties
        .iter()
        .map(|(name, property)| (name.clone(), plausible(document, property)))
        .collect();
    let mut bodies = Vec::new();
    for (name, property) in &properties {
        let property = resolve(document, property);
        let mut body = base.clone();
        if has_type(property, "string") {
            body.insert(name.clone(), json!(bad));
            bodies.push((name.clone(), Value::Object(body)));
        } else if has_type(property, "array") {
            body.insert(name.clone(), json!([bad]));
            bodies.push((format!("{name}[0]"), Value::Object(body)));
        }
    }
    // A key may hold a control character too.
    let mut keyed = base;
    keyed.insert(bad.to_owned(), json!("x"));
    bodies.push(("a key".to_owned(), Value::Object(keyed)));
    bodies
}

fn is_refusal(status: u16, body: &Value) -> bool {
    status == 400 && body["error"] == "invalid_request"
}

backend_tests! {
    async fn every_json_field_of_every_operation_refuses_control_characters(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let document = app.get_json("/openapi.json").await;
        let mut checked = 0;
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
                // Leak reports are read only once signed: see the test below.
                if schema.is_null() || path == "/api/keys/leaked" {
                    continue;
                }
                // Real ids in paths, so that the body is what is refused.
                let concrete = path
                    .replace("{id}", admin.key.id.as_str())
                    .replace("{email}", "root@example.com");
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                for bad in CONTROLLED {
                    for (field, body) in bodies_with(&document, schema, bad) {
                        let response = admin
                            .request(&app, method.clone(), &concrete)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        let status = response.status().as_u16();
                        let answer: Value = response.json().await.unwrap_or(Value::Null);
                        assert!(
                            is_refusal(status, &answer),
                            "{method} {path} with {bad:?} in {field}: {status} {answer}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 40, "only {checked} bodies checked");
    }

    async fn forms_paths_and_queries_refuse_control_characters(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let document = app.get_json("/openapi.json").await;
        for bad in CONTROLLED_ENCODED {
            // OAuth forms: every field.
            for form in [
                format!("grant_type=password&username={bad}&password=long+enough+password"),
                format!("grant_type=password&username=root%40example.com&password={bad}"),
                format!("grant_type={bad}"),
                format!("grant_type=refresh_token&refresh_token={bad}"),
            ] {
                for path in ["/oauth/token", "/oauth/introspect"] {
                    let form = if path == "/oauth/introspect" {
                        format!("token={bad}")
                    } else {
                        form.clone()
                    };
                    let response = app
                        .client
                        .post(app.url(path))
                        .header("x-api-key", &admin.key.key)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap();
                    assert!(
                        is_refusal(status, &answer),
                        "{path} with {form}: {status} {answer}"
                    );
                }
            }
            // Every path parameter of every operation (but the original
            // path Envoy appends to /auth/verify/, which is the protected
            // application's, checked below).
            for (path, operations) in document["paths"].as_object().unwrap() {
                if !path.contains('{') || path.starts_with("/auth/verify/") {
                    continue;
                }
                let concrete = path.replace("{id}", bad).replace("{email}", bad);
                for method in operations.as_object().unwrap().keys() {
                    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                    let response = admin.request(&app, method.clone(), &concrete).send().await.unwrap();
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    assert!(
                        is_refusal(status, &answer),
                        "{method} {concrete}: {status} {answer}"
                    );
                }
            }
            // Query parameters.
            for query in ["/admin/keys?cursor=", "/admin/audit?cursor=", "/admin/alerts?since="] {
                let target = format!("{query}{bad}");
                let response = admin.request(&app, Method::GET, &target).send().await.unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap();
                assert!(is_refusal(status, &answer), "{target}: {status} {answer}");
            }
        }
    }

    async fn the_original_path_envoy_appends_to_auth_verify_is_not_judged(backend) {
        let app = TestApp::spawn(backend).await;
        let (key, token, _) = app.logged_in().await;
        for suffix in ["/search?q=a%0Ab", "/files/tab%09name", "/x%00y"] {
            let response = app
                .client
                .get(app.url(&format!("/auth/verify{suffix}")))
                .header("x-api-key", &key.key)
                .header("x-api-token", &token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{suffix}");
        }
    }

    async fn a_login_username_with_a_control_character_is_a_bad_request(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(assetpool_core::Environment::Production).await;
        for username in ["a\u{0}@example.com", "x\u{1b}[2K\r\u{1b}[32mNo failed logins@example.com"] {
            let response = app.login(&key.key, username, "long enough password").await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            assert!(is_refusal(status, &answer), "{username:?}: {status} {answer}");
        }
        // Nothing reached the throttle's records.
        assert!(app.admin.login_throttles(None).await.unwrap().is_empty());
    }

    async fn signed_leak_reports_with_control_characters_are_refused(backend) {
        const SECRET: &str = "a shared secret of the scanner";
        let app = TestApp::spawn_with(backend, |settings| {
            settings.leak_reports.secret = Some(SECRET.to_owned().into());
        })
        .await;
        for field in ["token", "type", "url", "source"] {
            for bad in CONTROLLED {
                let mut report = json!({
                    "token": "apk_prod_x", "type": "assetpool_api_key",
                    "url": "https://example.com/leak", "source": "content"
                });
                report[field] = json!(bad);
                let body = json!([report]).to_string();
                let now = u64::try_from(app.clock.now().timestamp()).unwrap();
                let signature = assetpool_server::webhooks::signature_header(
                    SECRET.as_bytes(),
                    now,
                    &body,
                );
                let response = app
                    .client
                    .post(app.url("/api/keys/leaked"))
                    .header("content-type", "application/json")
                    .header("x-assetpool-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap();
                assert!(is_refusal(status, &answer), "{field} {bad:?}: {status} {answer}");
            }
        }
    }

    async fn two_content_type_headers_are_a_bad_request(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(assetpool_core::Environment::Production).await;
        let response = app
            .client
            .post(app.url("/api/authentication/login"))
            .header("x-api-key", &key.key)
            .header("content-type", "application/json")
            .header("content-type", "text/plain")
            .body(r#"{"username":"alice@example.com","password":"long enough password"}"#)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert!(is_refusal(status, &answer), "{status} {answer}");
    }
}
