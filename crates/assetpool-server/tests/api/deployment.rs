//! The deployment guide's nginx configuration, exercised for real: nginx in
//! front of three servers sharing one PostgreSQL database.
//!
//! Needs nginx and PostgreSQL; skipped (and said so) without them, unless
//! ASSETPOOL_REQUIRE_NGINX=1 / ASSETPOOL_REQUIRE_POSTGRES=1 make that a failure.

use crate::helpers::{Backend, Storage, TestApp, PASSWORD};
use assetpool_core::Environment;
use serde_json::{json, Value};
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CONFIG: &str = include_str!("../../../../docs/deployment/nginx.conf");

struct Nginx {
    child: Child,
    url: String,
    _directory: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_available() -> bool {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("ASSETPOOL_REQUIRE_NGINX").as_deref() != Ok("1"),
            "nginx is required (ASSETPOOL_REQUIRE_NGINX=1) but not installed"
        );
        // Not captured by the test harness: a plain `cargo test` shows the skip.
        let _ = writeln!(
            std::io::stderr(),
            "skipped the nginx deployment test: nginx is not installed"
        );
    }
    found
}

/// Starts nginx with the guide's configuration, pointed at `nodes`.
async fn start_nginx(nodes: &[&TestApp]) -> Nginx {
    let directory = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = directory.path().display().to_string();
    let mut config = CONFIG
        .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
        .replace("/run/nginx-assetpool.pid", &format!("{path}/nginx.pid"))
        .replace("/var/log/nginx/", &format!("{path}/"));
    for (index, node) in nodes.iter().enumerate() {
        let address = node.address.trim_start_matches("http://");
        config = config.replace(&format!("127.0.0.1:808{}", index + 1), address);
    }
    config = config.replacen(
        "http {",
        &format!(
            "http {{\n    client_body_temp_path {path}/body;\n    proxy_temp_path {path}/proxy;\n    \
             fastcgi_temp_path {path}/fastcgi;\n    uwsgi_temp_path {path}/uwsgi;\n    scgi_temp_path {path}/scgi;"
        ),
        1,
    );
    let config_path = directory.path().join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(directory.path())
        .arg("-c")
        .arg(&config_path)
        .arg("-g")
        .arg("daemon off;")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Nginx {
        child,
        url,
        _directory: directory,
    }
}

#[tokio::test]
async fn three_nodes_behind_nginx() {
    if !nginx_available() {
        return;
    }
    let Some(_) = Backend::postgres("three_nodes_behind_nginx").await else {
        return;
    };
    let schema = assetpool_store_tests::postgres::fresh_schema("three_nodes_behind_nginx")
        .await
        .unwrap();
    let url = schema.url.clone();
    let first = TestApp::start(url.clone(), Storage::Postgres(schema), |_| {}).await;
    let others = [
        TestApp::start(url.clone(), Storage::None, |_| {}).await,
        TestApp::start(url, Storage::None, |_| {}).await,
    ];
    let nginx = start_nginx(&[&first, &others[0], &others[1]]).await;
    let key = first.create_key(Environment::Production).await;
    first.create_user("alice@example.com").await;
    let client = reqwest::Client::new();

    let login = client
        .post(format!("{}/api/authentication/login", nginx.url))
        .header("x-api-key", &key.key)
        .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.unwrap();
    let token = tokens["accessToken"].as_str().unwrap();
    // Round robin: these reach every node; each accepts the token.
    for _ in 0..6 {
        let response = client
            .get(format!("{}/v1/resource", nginx.url))
            .header("x-api-key", &key.key)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"));
    }
    let logout = client
        .post(format!("{}/api/authentication/logout", nginx.url))
        .header("x-api-key", &key.key)
        .header("x-api-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    // Within a second, no node behind nginx accepts the token any more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..6 {
        let response = client
            .get(format!("{}/v1/resource", nginx.url))
            .header("x-api-key", &key.key)
            .header("x-api-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "token_revoked");
    }
    // nginx refuses oversized bodies before they reach a node.
    let large = client
        .post(format!("{}/api/authentication/login", nginx.url))
        .header("x-api-key", &key.key)
        .header("content-type", "application/json")
        .body("x".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);
}
