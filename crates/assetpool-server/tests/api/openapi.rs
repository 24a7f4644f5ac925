//! The OpenAPI document against real answers: for every operation it lists,
//! real requests (a success and typical refusals) must get a status the
//! document names for that path and method, and a JSON body with the
//! documented schema's required properties and types (`$ref`s resolved).
//!
//! The served document must also be the committed `docs/openapi.json`, so
//! that a change to the API shows in review.
//!
//! Not exercised here: 429 and 503 (they need a throttled or saturated server;
//! their bodies are the same `ErrorResponse` checked for the other refusals).

use crate::helpers::{Backend, TestApp, PASSWORD};
use assetpool_core::Environment;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// Set to rewrite `docs/openapi.json` from the served document.
const UPDATE_VARIABLE: &str = "ASSETPOOL_UPDATE_OPENAPI";

const FORM: &str = "application/x-www-form-urlencoded";

/// The document, and which operations the test has exercised.
pub(crate) struct Document {
    document: Value,
    exercised: BTreeSet<(String, String)>,
    /// Answers whose body was checked against a schema.
    schema_checks: usize,
}

impl Document {
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
                let target = &self.document["components"]["schemas"][name];
                assert!(target.is_object(), "dangling $ref {reference}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Whether `value` has the shape `schema` describes.
    fn conform(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        for combinator in ["oneOf", "anyOf"] {
            if let Some(options) = schema[combinator].as_array() {
                return options
                    .iter()
                    .find_map(|option| self.conform(option, value, at).ok())
                    .ok_or_else(|| format!("{at}: {value} matches no {combinator} option"));
            }
        }
        if let Some(parts) = schema["allOf"].as_array() {
            for part in parts {
                self.conform(part, value, at)?;
            }
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|name| type_matches(name, value)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                return Err(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(object) = value.as_object() {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    return Err(format!("{at}: required property {name} missing in {value}"));
                }
            }
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                if let Some(field) = object.get(name) {
                    self.conform(property, field, &format!("{at}.{name}"))?;
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                self.conform(items, item, &format!("{at}[{index}]"))?;
            }
        }
        Ok(())
    }

    /// Sends `request` and checks its answer against `method path` in the document.
    pub(crate) async fn check(
        &mut self,
        method: Method,
        path: &str,
        request: RequestBuilder,
        expected: u16,
    ) {
        let operation = &self.document["paths"][path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(
            status, expected,
            "{method} {path}: the test expected {expected}"
        );
        let documented = operation["responses"][status.to_string()].clone();
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which the document does not name"
        );
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap();
        if let Some(schema) = documented["content"]["application/json"].get("schema") {
            assert!(
                content_type.starts_with("application/json"),
                "{method} {path} {status}: {content_type}"
            );
            let body: Value = serde_json::from_str(&text).unwrap();
            if let Err(mismatch) = self.conform(schema, &body, "body") {
                panic!("{method} {path} {status}: {mismatch}");
            }
            self.schema_checks += 1;
        } else if let Some(documented_type) = documented["content"]
            .as_object()
            .and_then(|content| content.keys().next())
        {
            assert_eq!(
                &content_type, documented_type,
                "{method} {path} {status}: the content type is not the documented one"
            );
        } else if status == 204 {
            assert!(text.is_empty(), "{method} {path} {status} has a body");
        }
        self.exercised
            .insert((method.as_str().to_lowercase(), path.to_owned()));
    }

    /// Every operation of the document.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut operations = BTreeSet::new();
        for (path, item) in self.document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.insert((method.clone(), path.clone()));
            }
        }
        operations
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

#[tokio::test]
async fn the_committed_openapi_document_is_the_served_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: Value = app.get_json("/openapi.json").await;
    let mut pretty = serde_json::to_string_pretty(&served).unwrap();
    pretty.push('\n');
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os(UPDATE_VARIABLE).is_some() {
        std::fs::write(&committed_path, &pretty).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == pretty,
        "docs/openapi.json is not the document the server serves; if the API change is \
         intended, regenerate it with `{UPDATE_VARIABLE}=1 cargo test -p assetpool-server \
         --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn every_endpoint_answers_as_documented() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document: Value = app.get_json("/openapi.json").await;
    let mut doc = Document {
        document,
        exercised: BTreeSet::new(),
        schema_checks: 0,
    };
    authentication(&app, &mut doc).await;
    oauth(&app, &mut doc).await;
    public(&app, &mut doc).await;
    crate::admin::documented(&app, &mut doc).await;
    crate::applications::documented(&app, &mut doc).await;
    crate::leaks::documented(&app, &mut doc).await;
    let missing: Vec<_> = doc
        .operations()
        .difference(&doc.exercised)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "operations never exercised: {missing:?}"
    );
    // Every JSON answer above but logout 204, healthz, readyz, metrics and openapi.json has a documented schema.
    assert!(
        doc.schema_checks >= 22,
        "only {} bodies checked",
        doc.schema_checks
    );
}

async fn authentication(app: &TestApp, doc: &mut Document) {
    let key = app.create_key(Environment::Production).await;
    app.create_user("alice@example.com").await;
    let login = "/api/authentication/login";
    let credentials = json!({"username": "alice@example.com", "password": PASSWORD});
    let post = |path: &str| app.client.post(app.url(path)).header("x-api-key", &key.key);
    doc.check(Method::POST, login, post(login).json(&credentials), 200)
        .await;
    let wrong = json!({"username": "alice@example.com", "password": "wrong password!"});
    doc.check(Method::POST, login, post(login).json(&wrong), 401)
        .await;
    doc.check(
        Method::POST,
        login,
        post(login).json(&json!({"username": 1})),
        400,
    )
    .await;
    doc.check(
        Method::POST,
        login,
        post(login).body("x").header("content-type", "text/plain"),
        415,
    )
    .await;
    let large = json!({"username": "a", "password": "x".repeat(20_000)});
    doc.check(Method::POST, login, post(login).json(&large), 413)
        .await;

    let tokens: Value = app
        .login(&key.key, "alice@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let refresh = "/api/authentication/refresh";
    let body = json!({"refreshToken": tokens["refreshToken"]});
    doc.check(Method::POST, refresh, post(refresh).json(&body), 200)
        .await;
    doc.check(Method::POST, refresh, post(refresh).json(&body), 401)
        .await;
    doc.check(Method::POST, refresh, post(refresh).json(&json!([])), 400)
        .await;

    let tokens: Value = app
        .login(&key.key, "alice@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["accessToken"].as_str().unwrap().to_owned();
    let resource = "/v1/resource";
    let get = || {
        app.client
            .get(app.url(resource))
            .header("x-api-key", &key.key)
    };
    doc.check(
        Method::GET,
        resource,
        get().header("x-api-token", &access),
        200,
    )
    .await;
    doc.check(Method::GET, resource, get(), 401).await;
    let conflicting = get()
        .header("x-api-token", &access)
        .header("authorization", "Bearer other");
    doc.check(Method::GET, resource, conflicting, 400).await;

    forward_auth(app, doc, &key.key, &access).await;

    let logout = "/api/authentication/logout";
    doc.check(
        Method::POST,
        logout,
        post(logout).header("x-api-token", &access),
        204,
    )
    .await;
    doc.check(Method::POST, logout, post(logout), 401).await;
}

/// `/auth/verify`, asked as a proxy would (original method and URI in headers).
async fn forward_auth(app: &TestApp, doc: &mut Document, key: &str, access: &str) {
    let verify = "/auth/verify";
    let forwarded = || {
        app.client
            .get(app.url(verify))
            .header("x-api-key", key)
            .header("x-original-uri", "/v2/things?page=2")
            .header("x-original-method", "DELETE")
    };
    doc.check(
        Method::GET,
        verify,
        forwarded().header("x-api-token", access),
        200,
    )
    .await;
    doc.check(Method::GET, verify, forwarded(), 401).await;
    // Any method is accepted; the document lists the usual ones.
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let request = app
            .client
            .request(method.clone(), app.url(verify))
            .header("x-api-key", key)
            .header("x-api-token", access);
        doc.check(method, verify, request, 200).await;
    }
    let conflicting = forwarded()
        .header("x-api-token", access)
        .header("authorization", "Bearer other");
    doc.check(Method::GET, verify, conflicting, 400).await;
    let scoped = app
        .create_scoped_key(Environment::Production, Some("orders:read"))
        .await;
    let tokens: Value = app
        .login(&scoped.key, "alice@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let scoped_access = tokens["accessToken"].as_str().unwrap();
    let insufficient = app
        .client
        .get(app.url("/auth/verify?scope=orders:write"))
        .header("x-api-key", &scoped.key)
        .header("x-api-token", scoped_access);
    doc.check(Method::GET, verify, insufficient, 403).await;
}

async fn oauth(app: &TestApp, doc: &mut Document) {
    let key = app.create_key(Environment::Production).await;
    let token = "/oauth/token";
    let form =
        |path: &str, body: String| app.post_raw(path, FORM, body).header("x-api-key", &key.key);
    let password = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "alice@example.com"),
        ("password", PASSWORD),
    ])
    .unwrap();
    let answer: Value = form(token, password.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc.check(Method::POST, token, form(token, password.clone()), 200)
        .await;
    doc.check(
        Method::POST,
        token,
        form(token, "grant_type=refresh_token&refresh_token=apr_x".into()),
        400,
    )
    .await;
    doc.check(
        Method::POST,
        token,
        app.post_raw(token, FORM, password),
        401,
    )
    .await;

    let introspect = "/oauth/introspect";
    let access = answer["access_token"].as_str().unwrap();
    let body = serde_urlencoded::to_string([("token", access)]).unwrap();
    doc.check(
        Method::POST,
        introspect,
        form(introspect, body.clone()),
        200,
    )
    .await;
    doc.check(
        Method::POST,
        introspect,
        form(introspect, "token=garbage".into()),
        200,
    )
    .await;
    doc.check(
        Method::POST,
        introspect,
        form(introspect, String::new()),
        400,
    )
    .await;
    doc.check(
        Method::POST,
        introspect,
        app.post_raw(introspect, FORM, body),
        401,
    )
    .await;
    let json = app
        .post_raw(introspect, "application/json", "{}")
        .header("x-api-key", &key.key);
    doc.check(Method::POST, introspect, json, 415).await;
}

async fn public(app: &TestApp, doc: &mut Document) {
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        doc.check(Method::GET, path, app.client.get(app.url(path)), 200)
            .await;
    }
}
