//! `POST /api/keys/leaked`: GitHub secret scanning partner reports, signed
//! with ECDSA P-256 (as GitHub signs) or a shared secret; verdicts, the
//! `key_leaked` alert, the `--on-leak` policy, and nothing of the reported
//! value kept.

use crate::backend_tests;
use crate::helpers::{assert_error, Backend, TestApp, TestKey};
use assetpool_core::leaks::LeakPolicy;
use assetpool_core::Clock as _;
use assetpool_core::Environment;
use assetpool_server::ServerSettings;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

const KEY_ID: &str = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";
const SECRET: &str = "a shared secret of the scanner";

/// A scanner's signing key and the public-keys file the server reads.
struct Scanner {
    key_pair: EcdsaKeyPair,
    rng: SystemRandom,
    keys_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scanner {
    fn new() -> Scanner {
        let generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let rng = SystemRandom::new();
        let key_pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &generated.serialize_der(),
            &rng,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keys_file = dir.path().join("github-keys.json");
        let document = json!({"public_keys": [
            {"key_identifier": KEY_ID, "key": generated.public_key_pem(), "is_current": true}
        ]});
        std::fs::write(&keys_file, document.to_string()).unwrap();
        Scanner {
            key_pair,
            rng,
            keys_file,
            _dir: dir,
        }
    }

    fn sign(&self, body: &str) -> String {
        let signature = self.key_pair.sign(&self.rng, body.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature.as_ref())
    }

    fn configure(&self, policy: LeakPolicy) -> impl FnOnce(&mut ServerSettings) {
        let file = self.keys_file.clone();
        move |settings| {
            settings.leak_reports.public_keys_file = Some(file);
            settings.leak_reports.policy = policy;
        }
    }
}

fn hmac_hex(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    tag.as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `X-Assetpool-Signature` for `body` signed at `timestamp` (unix seconds).
fn hmac_signature(secret: &str, timestamp: i64, body: &str) -> String {
    format!(
        "t={timestamp},v1={}",
        hmac_hex(secret, &format!("{timestamp}.{body}"))
    )
}

/// The server's clock (the test's own), in unix seconds.
fn now(app: &TestApp) -> i64 {
    app.clock.now().timestamp()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn report(tokens: &[&str]) -> String {
    let reports: Vec<Value> = tokens
        .iter()
        .map(|token| {
            json!({"token": token, "type": "assetpool_api_key",
                   "url": "https://github.com/octo/repo/blob/main/.env", "source": "content"})
        })
        .collect();
    Value::Array(reports).to_string()
}

async fn post(app: &TestApp, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let mut request = app.post_raw("/api/keys/leaked", "application/json", body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

/// Sends a report's request head over a raw connection, announcing
/// `content_length` bytes of body but sending none, and returns what the
/// server answers (read until it closes or 2 s pass without a byte).
async fn raw_post_without_body(
    app: &TestApp,
    headers: &[(&str, String)],
    content_length: usize,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut head = format!(
        "POST /api/keys/leaked HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/json\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await;
        match read {
            Ok(Ok(count)) if count > 0 => {
                answer.extend_from_slice(&buffer[..count]);
                if answer.windows(4).any(|window| window == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn post_signed(app: &TestApp, scanner: &Scanner, body: &str) -> reqwest::Response {
    let headers = [
        ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
        ("Github-Public-Key-Signature", scanner.sign(body)),
    ];
    post(app, body, &headers).await
}

/// A well-formed key of this format that no one issued.
fn unknown_key() -> String {
    assetpool_core::ApiKeySecret::generate(Environment::Production)
        .expose()
        .to_owned()
}

async fn leak_alerts(app: &TestApp) -> Vec<assetpool_wire::AlertResponse> {
    let alerts = app.admin.list_alerts(None, None, 100).await.unwrap().items;
    alerts
        .into_iter()
        .filter(|alert| alert.rule == "key_leaked")
        .collect()
}

async fn key_status(app: &TestApp, key: &TestKey, token: &str) -> u16 {
    app.resource(&key.key, token).await.status().as_u16()
}

backend_tests! {
    async fn a_reported_live_key_is_a_true_positive_and_raises_an_alert(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, scanner.configure(LeakPolicy::Alert)).await;
        let (key, token, _) = app.logged_in().await;
        let unknown = unknown_key();
        let body = report(&[&key.key, &unknown, "apk_prod_garbage"]);
        let response = post_signed(&app, &scanner, &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&key.key) && !text.contains(&unknown));
        let verdicts: Value = serde_json::from_str(&text).unwrap();
        let labels: Vec<&str> = verdicts
            .as_array()
            .unwrap()
            .iter()
            .map(|verdict| verdict["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, ["true_positive", "false_positive", "false_positive"]);
        assert_eq!(verdicts[0]["token_hash"], sha256_hex(&key.key));
        assert_eq!(verdicts[1]["token_hash"], sha256_hex(&unknown));
        assert_eq!(verdicts[0]["token_type"], "assetpool_api_key");

        let alerts = leak_alerts(&app).await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].api_key.as_deref(), Some(key.id.as_str()));
        assert_eq!(alerts[0].evidence["url"], "https://github.com/octo/repo/blob/main/.env");
        assert_eq!(alerts[0].evidence["source"], "content");
        assert!(!alerts[0].evidence.to_string().contains(&key.key));
        // Policy `alert`: the key keeps working.
        assert_eq!(key_status(&app, &key, &token).await, 200);
    }

    async fn under_the_revoke_policy_the_key_is_revoked_and_audited(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, scanner.configure(LeakPolicy::Revoke)).await;
        let (key, token, _) = app.logged_in().await;
        assert_eq!(key_status(&app, &key, &token).await, 200);
        // Reported twice in one batch: one alert, one revocation.
        let response = post_signed(&app, &scanner, &report(&[&key.key, &key.key])).await;
        assert_eq!(response.status(), 200);
        app.eventually(Duration::from_secs(1), || async {
            key_status(&app, &key, &token).await == 401
        })
        .await;
        assert_error(app.resource(&key.key, &token).await, 401, "api_key_revoked").await;
        assert_eq!(leak_alerts(&app).await.len(), 1);
        let audit = app.admin.list_audit(None, 100).await.unwrap().items;
        let revocations: Vec<_> = audit
            .iter()
            .filter(|entry| entry.action == "key.revoke" && entry.target == key.id.as_str())
            .collect();
        assert_eq!(revocations.len(), 1, "{audit:?}");
        assert_eq!(revocations[0].actor, "service:leak-report");
        assert_eq!(revocations[0].outcome, "success");
    }

    async fn a_revoked_key_is_a_true_positive_without_a_new_alert(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, scanner.configure(LeakPolicy::Revoke)).await;
        let key = app.create_key(Environment::Production).await;
        app.admin.revoke_api_key(&key.id, None).await.unwrap();
        let response = post_signed(&app, &scanner, &report(&[&key.key])).await;
        assert_eq!(response.status(), 200);
        let verdicts: Value = response.json().await.unwrap();
        assert_eq!(verdicts[0]["label"], "true_positive");
        assert!(leak_alerts(&app).await.is_empty());
    }

    async fn unsigned_or_badly_signed_reports_are_refused_and_change_nothing(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, scanner.configure(LeakPolicy::Revoke)).await;
        let (key, token, _) = app.logged_in().await;
        let body = report(&[&key.key]);
        let other = Scanner::new();
        let refusals = [
            vec![],
            vec![("Github-Public-Key-Identifier", KEY_ID.to_owned())],
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", other.sign(&body)),
            ],
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", scanner.sign(&report(&["x"]))),
            ],
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", "not base64!".to_owned()),
            ],
            vec![
                ("Github-Public-Key-Identifier", "another-key".to_owned()),
                ("Github-Public-Key-Signature", scanner.sign(&body)),
            ],
            vec![("X-Assetpool-Signature", hmac_signature(SECRET, now(&app), &body))],
        ];
        for headers in refusals {
            let response = post(&app, &body, &headers).await;
            let error = assert_error(response, 403, "forbidden").await;
            assert!(!error.to_string().contains(&key.key));
        }
        assert!(leak_alerts(&app).await.is_empty());
        assert_eq!(key_status(&app, &key, &token).await, 200);
    }

    async fn the_shared_secret_mode_checks_the_hmac(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.leak_reports.secret = Some(SECRET.to_owned().into());
        })
        .await;
        let key = app.create_key(Environment::Production).await;
        let body = report(&[&key.key]);
        let good = [("X-Assetpool-Signature", hmac_signature(SECRET, now(&app), &body))];
        let response = post(&app, &body, &good).await;
        assert_eq!(response.status(), 200);
        let verdicts: Value = response.json().await.unwrap();
        assert_eq!(verdicts[0]["label"], "true_positive");
        assert_eq!(leak_alerts(&app).await.len(), 1);

        let at = now(&app);
        let tag = hmac_hex(SECRET, &format!("{at}.{body}"));
        for value in [
            hmac_signature("another secret", at, &body),
            // The signature of the body alone, as before timestamps.
            format!("sha256={}", hmac_hex(SECRET, &body)),
            format!("t={at},v1={}", hmac_hex(SECRET, &body)),
            hmac_hex(SECRET, &body),
            format!("t={at},v1=zz"),
            format!("t={at}"),
            format!("v1={tag}"),
            format!("t={at},v1={tag},t={at}"),
            format!("t=-{at},v1={tag}"),
        ] {
            let response = post(&app, &body, &[("X-Assetpool-Signature", value)]).await;
            assert_error(response, 403, "forbidden").await;
        }
    }

    async fn shared_secret_reports_cannot_be_replayed(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.leak_reports.secret = Some(SECRET.to_owned().into());
        })
        .await;
        let body = report(&[&unknown_key()]);
        // Fresh, and within the 5 minutes either way of the server's clock.
        for at in [now(&app), now(&app) - 240, now(&app) + 240] {
            let signed = [("X-Assetpool-Signature", hmac_signature(SECRET, at, &body))];
            assert_eq!(post(&app, &body, &signed).await.status(), 200, "{at}");
        }
        // A report captured more than 5 minutes ago (or dated ahead) is refused,
        // however well signed.
        for at in [now(&app) - 360, now(&app) - 86_400, now(&app) + 360, 0] {
            let signed = [("X-Assetpool-Signature", hmac_signature(SECRET, at, &body))];
            let error = assert_error(post(&app, &body, &signed).await, 403, "forbidden").await;
            assert!(error["message"].as_str().unwrap().contains("5 minutes"), "{error}");
        }
        // A fresh report replayed once the server's clock moved on 6 minutes.
        let at = now(&app);
        let captured = [("X-Assetpool-Signature", hmac_signature(SECRET, at, &body))];
        assert_eq!(post(&app, &body, &captured).await.status(), 200);
        app.clock.advance(chrono::Duration::seconds(360));
        assert_error(post(&app, &body, &captured).await, 403, "forbidden").await;
        // Moving an old signature's timestamp forward breaks it.
        let old = now(&app) - 3_600;
        let tag = hmac_hex(SECRET, &format!("{old}.{body}"));
        let tampered = [("X-Assetpool-Signature", format!("t={},v1={tag}", now(&app)))];
        let error = assert_error(post(&app, &body, &tampered).await, 403, "forbidden").await;
        assert!(error["message"].as_str().unwrap().contains("does not match"), "{error}");
    }

    async fn missing_or_malformed_signatures_are_refused_before_the_body_is_read(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, |settings| {
            scanner.configure(LeakPolicy::Alert)(settings);
            settings.leak_reports.secret = Some(SECRET.to_owned().into());
        })
        .await;
        let stale = hmac_signature(SECRET, now(&app) - 3_600, "[]");
        let refusals: Vec<Vec<(&str, String)>> = vec![
            vec![],
            vec![("Github-Public-Key-Identifier", KEY_ID.to_owned())],
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", "not base64!".to_owned()),
            ],
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", "AAAA".repeat(40)),
            ],
            vec![
                ("Github-Public-Key-Identifier", "another-key".to_owned()),
                ("Github-Public-Key-Signature", scanner.sign("[]")),
            ],
            vec![("X-Assetpool-Signature", "sha256=00".to_owned())],
            vec![("X-Assetpool-Signature", stale)],
        ];
        for headers in refusals {
            // Headers that announce a body of 200 KiB, and not one byte of it:
            // the answer comes at once, without waiting for the body.
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                raw_post_without_body(&app, &headers, 200 * 1024),
            )
            .await
            .unwrap_or_else(|_| panic!("{headers:?}: no answer before the body"));
            assert!(answer.starts_with("HTTP/1.1 403"), "{headers:?}: {answer}");
            assert!(answer.contains("\"forbidden\""), "{answer}");
        }
    }

    async fn malformed_or_oversized_reports_are_refused(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, scanner.configure(LeakPolicy::Alert)).await;
        for body in ["{}", r#"[{"type":"x"}]"#, "not json", r#"[{"token": 5}]"#] {
            let response = post_signed(&app, &scanner, body).await;
            assert_error(response, 400, "invalid_request").await;
        }
        let body = report(&["x"]);
        let response = app
            .post_raw("/api/keys/leaked", "text/plain", body.clone())
            .header("Github-Public-Key-Identifier", KEY_ID)
            .header("Github-Public-Key-Signature", scanner.sign(&body))
            .send()
            .await
            .unwrap();
        assert_error(response, 415, "unsupported_media_type").await;
        // A batch larger than the 16 KiB of other endpoints is fine...
        let many: Vec<String> = (0..500).map(|_| unknown_key()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let body = report(&many);
        assert!(body.len() > 16 * 1024);
        let response = post_signed(&app, &scanner, &body).await;
        assert_eq!(response.status(), 200);
        let verdicts: Value = response.json().await.unwrap();
        assert_eq!(verdicts.as_array().unwrap().len(), 500);
        // ...up to 256 KiB.
        let huge = format!("[{}]", " ".repeat(256 * 1024));
        let response = post_signed(&app, &scanner, &huge).await;
        assert_error(response, 413, "payload_too_large").await;
        // Declared too large: refused on the headers, the body never read.
        let headers = [
            ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
            ("Github-Public-Key-Signature", scanner.sign("[]")),
        ];
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            raw_post_without_body(&app, &headers, 256 * 1024 + 1),
        )
        .await
        .expect("no answer before the body");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }

    async fn without_a_configured_sender_the_endpoint_does_not_exist(backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_key(Environment::Production).await;
        let response = post(&app, &report(&[&key.key]), &[]).await;
        assert_error(response, 404, "not_found").await;
    }

    async fn the_reported_values_are_never_stored(backend) {
        let scanner = Scanner::new();
        let app = TestApp::spawn_with(backend, scanner.configure(LeakPolicy::Revoke)).await;
        let key = app.create_key(Environment::Production).await;
        let unknown = unknown_key();
        let garbage = "apk_prod_thisIsNotAKeyButStillSecret";
        let response = post_signed(&app, &scanner, &report(&[&key.key, &unknown, garbage])).await;
        assert_eq!(response.status(), 200);
        if backend != Backend::Sqlite {
            return;
        }
        let path = app.database_url.trim_start_matches("sqlite://").to_owned();
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(content) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(content);
            }
        }
        assert!(!bytes.is_empty());
        for value in [key.key.as_str(), unknown.as_str(), garbage] {
            let found = bytes
                .windows(value.len())
                .any(|window| window == value.as_bytes());
            assert!(!found, "a reported value is in the database");
        }
    }
}

#[tokio::test]
async fn a_bad_public_keys_file_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cases = [
        ("missing.json", None),
        ("not-json.json", Some("nope".to_owned())),
        ("empty.json", Some(r#"{"public_keys": []}"#.to_owned())),
        (
            "ed25519.json",
            Some(
                json!({"public_keys": [{"key_identifier": "k", "key": ed25519.public_key_pem()}]})
                    .to_string(),
            ),
        ),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).unwrap();
        }
        let mut settings =
            ServerSettings::new(format!("sqlite://{}/test.db", dir.path().display()));
        settings.listen = "127.0.0.1:0".to_owned();
        settings.leak_reports.public_keys_file = Some(path);
        let Err(error) = assetpool_server::Application::build(settings).await else {
            panic!("a bad keys file is refused");
        };
        let message = format!("{error:#}");
        assert!(message.contains(name), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}

/// `POST /api/keys/leaked` against the OpenAPI document: off on `app` (404),
/// then on a server with a scanner key: 200, 400, 403, 413, 415.
pub(crate) async fn documented(app: &TestApp, doc: &mut crate::openapi::Document) {
    use reqwest::Method;
    let path = "/api/keys/leaked";
    let body = report(&["x"]);
    let off = app.post_raw(path, "application/json", body.clone());
    doc.check(Method::POST, path, off, 404).await;

    let scanner = Scanner::new();
    let on = TestApp::spawn_with(Backend::Sqlite, scanner.configure(LeakPolicy::Alert)).await;
    let signed = |content_type: &str, body: &str| {
        on.post_raw(path, content_type, body.to_owned())
            .header("Github-Public-Key-Identifier", KEY_ID)
            .header("Github-Public-Key-Signature", scanner.sign(body))
    };
    doc.check(Method::POST, path, signed("application/json", &body), 200)
        .await;
    doc.check(Method::POST, path, signed("application/json", "{}"), 400)
        .await;
    let unsigned = on.post_raw(path, "application/json", body.clone());
    doc.check(Method::POST, path, unsigned, 403).await;
    let huge = format!("[{}]", " ".repeat(256 * 1024));
    doc.check(Method::POST, path, signed("application/json", &huge), 413)
        .await;
    doc.check(Method::POST, path, signed("text/plain", &body), 415)
        .await;
}

/// GitHub's published sample request (its documentation of the partner
/// program: body, key identifier and signature, and the public key GitHub
/// publishes under that identifier) is accepted byte for byte.
#[tokio::test]
async fn githubs_documented_sample_report_verifies() {
    const GITHUB_KEY_ID: &str = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";
    const GITHUB_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n";
    const SIGNATURE: &str = "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/AO1RtBY66YcAdjxji410VQV4xg==";
    const BODY: &str = r#"[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]"#;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("github-keys.json");
    let document = json!({"public_keys": [
        {"key_identifier": GITHUB_KEY_ID, "key": GITHUB_KEY, "is_current": true}
    ]});
    std::fs::write(&keys_file, document.to_string()).unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, move |settings| {
        settings.leak_reports.public_keys_file = Some(keys_file);
    })
    .await;
    let response = post(
        &app,
        BODY,
        &[
            ("Github-Public-Key-Identifier", GITHUB_KEY_ID.to_owned()),
            ("Github-Public-Key-Signature", SIGNATURE.to_owned()),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let verdicts: Value = response.json().await.unwrap();
    assert_eq!(
        verdicts,
        json!([{
            "token_hash": sha256_hex("some_token"),
            "token_type": "some_type",
            "label": "false_positive"
        }])
    );
    // One byte changed: refused.
    let tampered = BODY.replace("some_type", "some_typf");
    let refused = post(
        &app,
        &tampered,
        &[
            ("Github-Public-Key-Identifier", GITHUB_KEY_ID.to_owned()),
            ("Github-Public-Key-Signature", SIGNATURE.to_owned()),
        ],
    )
    .await;
    assert_eq!(refused.status(), 403);
}

/// A rotated public-keys file takes effect at a reload (what SIGHUP does),
/// without a restart; a broken file leaves the keys in use.
#[tokio::test]
async fn a_reload_reads_a_rotated_public_keys_file() {
    let scanner = Scanner::new();
    let rotated = Scanner::new();
    let app = TestApp::spawn_with(Backend::Sqlite, scanner.configure(LeakPolicy::Alert)).await;
    let body = report(&[&unknown_key()]);
    assert_error(post_signed(&app, &rotated, &body).await, 403, "forbidden").await;

    std::fs::copy(&rotated.keys_file, &scanner.keys_file).unwrap();
    app.state
        .leak_reports
        .reload()
        .expect("the rotated file loads");
    assert_eq!(post_signed(&app, &rotated, &body).await.status(), 200);
    assert_error(post_signed(&app, &scanner, &body).await, 403, "forbidden").await;

    std::fs::write(&scanner.keys_file, "not json").unwrap();
    let error = app.state.leak_reports.reload().unwrap_err();
    assert!(
        format!("{error:#}").contains("github-keys.json"),
        "the error names the file: {error:#}"
    );
    assert_eq!(post_signed(&app, &rotated, &body).await.status(), 200);
}
