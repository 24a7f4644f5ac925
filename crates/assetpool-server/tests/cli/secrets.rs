//! No secret ever leaks: the whole flow (login, refresh, logout, revocation
//! and an error of every kind) against the real binary with debug logging on,
//! then every key, token and password used is searched for in the logs, the
//! metrics output and every response body.

use crate::helpers::{client, Db, Server, PASSWORD};
use serde_json::{json, Value};
use std::time::Duration;

const EMAIL: &str = "alice@example.com";
const WRONG: &str = "wrong password, quite long";
const WEBHOOK_SECRET: &str = "operators-webhook-secret-0123456789";
const LEAK_SECRET: &str = "leak-report-shared-secret-0123456789";
const ADMIN: &str = "root@example.com";

/// Every response seen, as text, with the secrets used so far.
struct Flow {
    server: Server,
    bodies: Vec<String>,
    codes: Vec<String>,
    secrets: Vec<String>,
}

impl Flow {
    fn secret(&mut self, value: &str) -> String {
        self.secrets.push(value.to_owned());
        value.to_owned()
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(code) = body["error"].as_str() {
            self.codes.push(code.to_owned());
        }
        // Successful grants carry the tokens they issue; every other
        // response, refusals above all, must carry no secret.
        if !(status == 200 && (text.contains("accessToken") || text.contains("access_token"))) {
            self.bodies.push(format!("{headers}\n{text}"));
        }
        (status, body)
    }

    async fn login(&mut self, key: &str, email: &str, password: &str) -> (u16, Value) {
        let request = client()
            .post(self.server.at("/api/authentication/login"))
            .header("x-api-key", key)
            .json(&json!({"username": email, "password": password}));
        self.send(request).await
    }

    async fn resource(&mut self, key: &str, token: &str) -> (u16, Value) {
        let request = client()
            .get(self.server.at("/v1/resource"))
            .header("x-api-key", key)
            .header("authorization", format!("Bearer {token}"));
        self.send(request).await
    }

    async fn refresh(&mut self, key: &str, refresh: &str) -> (u16, Value) {
        let request = client()
            .post(self.server.at("/api/authentication/refresh"))
            .header("x-api-key", key)
            .json(&json!({"refreshToken": refresh}));
        self.send(request).await
    }

    async fn raw(&mut self, path: &str, key: &str, content_type: &str, body: String) -> u16 {
        let request = client()
            .post(self.server.at(path))
            .header("x-api-key", key)
            .header("content-type", content_type)
            .body(body);
        self.send(request).await.0
    }
}

// One scenario, end to end: every step adds secrets and responses to check.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn no_secret_reaches_logs_metrics_or_error_bodies() {
    let db = Db::new();
    let server = Server::start_with_env(
        &db,
        &[
            "--token-ttl",
            "3",
            // Deliveries to a closed port fail, and are logged.
            "--alert-webhook",
            "http://127.0.0.1:9/hook",
            // The owner webhook below points there too.
            "--allow-private-webhooks",
        ],
        &[
            ("RUST_LOG", "debug"),
            ("NO_COLOR", "1"),
            ("ASSETPOOL_ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("ASSETPOOL_LEAK_REPORT_SECRET", LEAK_SECRET),
        ],
    );
    let key = db.create_key("shop", "prod");
    let dev_key = db.create_key("dev", "dev");
    let doomed = db.create_key("doomed", "prod");
    let limited = db.json(&[
        "keys", "create", "--name", "limited", "--env", "prod", "--rate", "1/h", "--burst", "1",
        "--json",
    ]);
    db.create_user(EMAIL, PASSWORD);
    db.run_stdin(
        &[
            "users",
            "create",
            "--email",
            ADMIN,
            "--password-stdin",
            "--admin",
        ],
        PASSWORD,
    );
    let leaked = db.create_key("leaked", "prod");
    let mut flow = Flow {
        server,
        bodies: Vec::new(),
        codes: Vec::new(),
        secrets: Vec::new(),
    };
    let key = flow.secret(&key.key);
    let dev_key = flow.secret(&dev_key.key);
    let doomed_key = flow.secret(&doomed.key);
    let limited_key = flow.secret(limited["key"].as_str().unwrap());
    flow.secret(PASSWORD);
    flow.secret(WRONG);
    // Well-formed but unknown: still a secret someone holds.
    let unknown_key = flow.secret("apk_prod_0000000000000000000000000000000000000A");

    // Login, use, refresh, reuse, logout.
    let (status, body) = flow.login(&key, EMAIL, PASSWORD).await;
    assert_eq!(status, 200);
    let access = flow.secret(body["accessToken"].as_str().unwrap());
    let refresh = flow.secret(body["refreshToken"].as_str().unwrap());
    assert_eq!(flow.resource(&key, &access).await.0, 200);
    let (status, body) = flow.refresh(&key, &refresh).await;
    assert_eq!(status, 200);
    let access2 = flow.secret(body["accessToken"].as_str().unwrap());
    let refresh2 = flow.secret(body["refreshToken"].as_str().unwrap());
    assert_eq!(flow.refresh(&key, &refresh).await.0, 401, "reuse");
    assert_eq!(
        flow.resource(&key, &access2).await.0,
        401,
        "session revoked by reuse"
    );
    assert_eq!(flow.refresh(&key, &refresh2).await.0, 401);
    let (_, body) = flow.login(&key, EMAIL, PASSWORD).await;
    let access3 = flow.secret(body["accessToken"].as_str().unwrap());
    flow.secret(body["refreshToken"].as_str().unwrap());
    let logout = client()
        .post(flow.server.at("/api/authentication/logout"))
        .header("x-api-key", &key)
        .header("x-api-token", &access3);
    assert_eq!(flow.send(logout).await.0, 204);
    assert_eq!(flow.resource(&key, &access3).await.0, 401);

    // The OAuth endpoint.
    let form = format!(
        "grant_type=password&username={EMAIL}&password={}",
        PASSWORD.replace(' ', "+")
    );
    let oauth = client()
        .post(flow.server.at("/oauth/token"))
        .header("x-api-key", &key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    let (status, body) = flow.send(oauth).await;
    assert_eq!(status, 200);
    let access4 = flow.secret(body["access_token"].as_str().unwrap());
    flow.secret(body["refresh_token"].as_str().unwrap());
    let wrong_form = format!(
        "grant_type=password&username={EMAIL}&password={}",
        WRONG.replace(' ', "+")
    );
    let oauth = client()
        .post(flow.server.at("/oauth/token"))
        .header("x-api-key", &key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(wrong_form);
    assert_eq!(flow.send(oauth).await.0, 400);

    // API key errors.
    let missing = client().get(flow.server.at("/v1/resource"));
    assert_eq!(flow.send(missing).await.0, 401);
    assert_eq!(flow.resource(&unknown_key, &access4).await.0, 401);
    // The last character changed (to another one), so the checksum fails.
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let mangled = flow.secret(&format!("{}{last}", &key[..key.len() - 1]));
    assert_eq!(flow.resource(&mangled, &access4).await.0, 401);
    assert_eq!(flow.resource(&dev_key, &access4).await.0, 401);
    assert_eq!(flow.login(&unknown_key, EMAIL, PASSWORD).await.0, 401);
    // Token errors.
    let no_token = client()
        .get(flow.server.at("/v1/resource"))
        .header("x-api-key", &key);
    assert_eq!(flow.send(no_token).await.0, 401);
    let tampered = flow.secret(&format!("{}AAAA", &access4[..access4.len() - 4]));
    assert_eq!(flow.resource(&key, &tampered).await.0, 401);
    let garbage = flow.secret("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    assert_eq!(flow.resource(&key, &garbage).await.0, 401);
    let (status, _) = flow.resource(&doomed_key, &access4).await;
    assert_eq!(status, 401, "a token of another application");
    // Login errors: unknown user, wrong password, bad bodies with secrets inside.
    assert_eq!(
        flow.login(&key, "nobody@example.com", PASSWORD).await.0,
        401
    );
    let duplicate =
        format!(r#"{{"username":"{EMAIL}","password":"{PASSWORD}","password":"{WRONG}"}}"#);
    assert_eq!(
        flow.raw(
            "/api/authentication/login",
            &key,
            "application/json",
            duplicate
        )
        .await,
        400
    );
    let trailing = format!(r#"{{"username":"{EMAIL}","password":"{PASSWORD}"}} {WRONG}"#);
    assert_eq!(
        flow.raw(
            "/api/authentication/login",
            &key,
            "application/json",
            trailing
        )
        .await,
        400
    );
    let wrong_type = format!(r#"{{"username":"{EMAIL}","password":["{PASSWORD}"]}}"#);
    assert_eq!(
        flow.raw(
            "/api/authentication/login",
            &key,
            "application/json",
            wrong_type
        )
        .await,
        400
    );
    let long = flow.secret(&"p".repeat(1100));
    assert_eq!(flow.login(&key, EMAIL, &long).await.0, 400);
    let form = format!("username={EMAIL}&password={}", PASSWORD.replace(' ', "+"));
    assert_eq!(
        flow.raw("/api/authentication/login", &key, "text/plain", form)
            .await,
        415
    );
    let huge = format!(
        r#"{{"username":"{EMAIL}","password":"{PASSWORD}","pad":"{}"}}"#,
        "x".repeat(20_000)
    );
    assert_eq!(
        flow.raw("/api/authentication/login", &key, "application/json", huge)
            .await,
        413
    );
    // Throttling.
    for _ in 0..5 {
        flow.login(&key, EMAIL, WRONG).await;
    }
    assert_eq!(flow.login(&key, EMAIL, PASSWORD).await.0, 429);
    // Revocation and rate limiting.
    db.ok(&["keys", "revoke", &doomed.id]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(flow.resource(&doomed_key, &access4).await.0, 401);
    assert_eq!(
        flow.resource(&limited_key, &access4).await.0,
        401,
        "other application"
    );
    assert_eq!(flow.resource(&limited_key, &access4).await.0, 429);
    // Expiry (token TTL 3 s).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(flow.resource(&key, &access4).await.0, 401);

    // Every error code of the flow was seen, so every error path ran.
    admin_and_leak_flows(&mut flow, &key, &leaked.key, &leaked.id).await;

    for code in [
        "missing_api_key",
        "invalid_api_key",
        "wrong_environment",
        "missing_token",
        "invalid_token",
        "token_revoked",
        "token_expired",
        "api_key_revoked",
        "invalid_refresh_token",
        "invalid_credentials",
        "invalid_request",
        "unsupported_media_type",
        "payload_too_large",
        "too_many_attempts",
        "invalid_grant",
        "rate_limited",
    ] {
        assert!(
            flow.codes.iter().any(|seen| seen == code),
            "{code} not exercised: {:?}",
            flow.codes
        );
    }
    let metrics = client()
        .get(flow.server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("assetpool_"), "{metrics}");
    let log = flow.server.stderr();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "debug logging is not on"
    );
    for secret in &flow.secrets {
        let shown = &secret[..secret.len().min(12)];
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({shown}...) is in the logs"
        );
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret ({shown}...) is in /metrics"
        );
        for body in &flow.bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a secret ({shown}...) is in a response: {body}"
            );
        }
    }
}

/// The admin API (a user created with a password, an owner webhook whose
/// secret is answered once) and a leak report signed with a shared secret.
async fn admin_and_leak_flows(flow: &mut Flow, key: &str, leaked_key: &str, leaked_id: &str) {
    flow.secret(WEBHOOK_SECRET);
    flow.secret(LEAK_SECRET);
    flow.secret(leaked_key);
    let (status, body) = flow.login(key, ADMIN, PASSWORD).await;
    assert_eq!(status, 200);
    let admin_token = flow.secret(body["accessToken"].as_str().unwrap());
    flow.secret(body["refreshToken"].as_str().unwrap());
    let new_password = flow.secret("a brand new admin-set password");
    let request = client()
        .post(flow.server.at("/admin/users"))
        .header("x-api-key", key)
        .header("authorization", format!("Bearer {admin_token}"))
        .json(&json!({"email": "bob@example.com", "password": new_password}));
    assert_eq!(flow.send(request).await.0, 201);
    // The one answer that carries a webhook secret, on purpose: not checked
    // as a body, but the secret is searched for everywhere else.
    let answer: Value = client()
        .patch(flow.server.at(&format!("/admin/keys/{leaked_id}")))
        .header("x-api-key", key)
        .header("authorization", format!("Bearer {admin_token}"))
        .json(&json!({"webhook": "http://127.0.0.1:9/owner?token=abc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    flow.secret(answer["webhookSecret"].as_str().unwrap());
    let report = json!([{"token": leaked_key, "type": "assetpool_api_key",
        "url": "https://example.com/leak", "source": "content"}])
    .to_string();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let signature =
        assetpool_server::webhooks::signature_header(LEAK_SECRET.as_bytes(), now, &report);
    let request = client()
        .post(flow.server.at("/api/keys/leaked"))
        .header("content-type", "application/json")
        .header("x-assetpool-signature", signature)
        .body(report);
    let (status, body) = flow.send(request).await;
    assert_eq!(
        (status, body[0]["label"].as_str()),
        (200, Some("true_positive"))
    );
    // The alert is stored, then the webhook worker fails to deliver it (and logs that).
    let started = std::time::Instant::now();
    while !flow.server.stderr().contains("webhook delivery failed") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failed delivery logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `server` accepts a leak report signed with `secret` (an unknown
/// key reported: 200 with a verdict, nothing else changes).
async fn leak_report_accepted(server: &Server, secret: &str) -> bool {
    let body = json!([{"token": "apk_prod_notakey", "type": "assetpool_api_key",
        "url": "https://example.com/leak", "source": "content"}])
    .to_string();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let signature = assetpool_server::webhooks::signature_header(secret.as_bytes(), now, &body);
    let response = client()
        .post(server.at("/api/keys/leaked"))
        .header("content-type", "application/json")
        .header("x-assetpool-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    response.status() == 200
}

/// `serve`'s secrets come from a file (`*_FILE`) or standard input (`-`)
/// without a word; given as arguments, where every user of the machine can
/// read them, they still work, with a warning that never shows them.
#[tokio::test]
async fn serve_secrets_come_from_files_or_stdin_and_argv_is_warned_about() {
    let db = Db::new();
    let webhook = ["--alert-webhook", "https://hooks.example.com/assetpool"];
    let leak_file = db.path().join("leak-secret");
    std::fs::write(&leak_file, format!("{LEAK_SECRET}\n")).unwrap();
    let webhook_file = db.path().join("webhook-secret");
    std::fs::write(&webhook_file, WEBHOOK_SECRET).unwrap();
    let leak_file = leak_file.to_str().unwrap();
    let webhook_file = webhook_file.to_str().unwrap();

    let from_files = Server::start_with_env(
        &db,
        &webhook,
        &[
            ("ASSETPOOL_LEAK_REPORT_SECRET_FILE", leak_file),
            ("ASSETPOOL_ALERT_WEBHOOK_SECRET_FILE", webhook_file),
        ],
    );
    assert!(leak_report_accepted(&from_files, LEAK_SECRET).await);
    assert!(
        !from_files.stderr().contains("warning"),
        "{}",
        from_files.stderr()
    );

    // Both from stdin: the webhook secret on the first line, then the leak secret.
    let stdin_file = db.path().join("stdin");
    std::fs::write(&stdin_file, format!("{WEBHOOK_SECRET}\n{LEAK_SECRET}\n")).unwrap();
    let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    command
        .args(webhook)
        .args(["--alert-webhook-secret", "-", "--leak-report-secret", "-"])
        .stdin(std::fs::File::open(&stdin_file).unwrap());
    let from_stdin = Server::start_command(&db, command);
    assert!(leak_report_accepted(&from_stdin, LEAK_SECRET).await);
    assert!(
        !from_stdin.stderr().contains("warning"),
        "{}",
        from_stdin.stderr()
    );

    let from_argv = Server::start(
        &db,
        &[
            webhook[0],
            webhook[1],
            "--alert-webhook-secret",
            WEBHOOK_SECRET,
            "--leak-report-secret",
            LEAK_SECRET,
        ],
    );
    assert!(leak_report_accepted(&from_argv, LEAK_SECRET).await);
    let log = from_argv.stderr();
    for flag in ["--alert-webhook-secret", "--leak-report-secret"] {
        assert!(
            log.contains(&format!("warning: {flag} on the command line")),
            "{log}"
        );
    }
    from_argv.assert_no_secrets(&[WEBHOOK_SECRET, LEAK_SECRET]);

    // The file is read as the option would be: a short webhook secret is
    // refused; a missing file is one line naming the variable.
    let short_file = db.path().join("short-secret");
    std::fs::write(&short_file, "short").unwrap();
    let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    command
        .args(webhook)
        .env("ASSETPOOL_ALERT_WEBHOOK_SECRET_FILE", &short_file);
    let line = crate::helpers::assert_clean_failure(&crate::helpers::output(command, None));
    assert!(line.contains("at least 16 characters"), "{line}");
    let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    command.env(
        "ASSETPOOL_LEAK_REPORT_SECRET_FILE",
        db.path().join("missing"),
    );
    let line = crate::helpers::assert_clean_failure(&crate::helpers::output(command, None));
    assert!(line.contains("ASSETPOOL_LEAK_REPORT_SECRET_FILE"), "{line}");
}

/// Every environment variable the command line reads, set to a marker value:
/// no `--help` of any command prints one (a database URL with its password,
/// a webhook URL or a secret in the environment stays out of help texts).
#[test]
fn no_help_text_prints_an_environment_value() {
    fn paths(command: &clap::Command, prefix: &[String], into: &mut Vec<Vec<String>>) {
        into.push(prefix.to_vec());
        for sub in command.get_subcommands() {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            paths(sub, &path, into);
        }
    }
    fn env_names(command: &clap::Command, into: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env() {
                into.push(name.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            env_names(sub, into);
        }
    }
    let cli = <assetpool_server::cli::Cli as clap::CommandFactory>::command();
    let mut commands = Vec::new();
    paths(&cli, &[], &mut commands);
    let mut names = Vec::new();
    env_names(&cli, &mut names);
    assert!(names.iter().any(|name| name == "ASSETPOOL_DATABASE_URL"));
    let dir = tempfile::tempdir().unwrap();
    for path in commands {
        let mut help = crate::helpers::command(dir.path());
        help.args(&path).arg("--help");
        for (index, name) in names.iter().enumerate() {
            help.env(name, format!("marker{index}value"));
        }
        let output = help.output().unwrap();
        assert!(output.status.success(), "{path:?} --help failed");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            !text.contains("marker"),
            "`{} --help` prints an environment value",
            path.join(" ")
        );
    }
}
