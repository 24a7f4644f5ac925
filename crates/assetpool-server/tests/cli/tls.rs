//! `assetpool serve --tls-cert FILE --tls-key FILE`: HTTPS with a self-signed
//! certificate made in the test, the handshake timeout, and clean failures on
//! bad files.

use crate::helpers::{assert_clean_failure, send_signal, Db, PASSWORD};
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

const EMAIL: &str = "alice@example.com";

/// A self-signed certificate for 127.0.0.1 and localhost, written to the
/// database's directory: (certificate PEM, certificate file, key file).
fn self_signed(db: &Db, name: &str) -> (String, PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    let cert_path = db.path().join(format!("{name}.crt"));
    let key_path = db.path().join(format!("{name}.key"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    (cert_pem, cert_path, key_path)
}

/// An HTTPS server child process, killed when dropped.
struct TlsServer {
    child: Child,
    address: String,
    stderr_path: PathBuf,
}

impl TlsServer {
    fn start(db: &Db, cert: &PathBuf, key: &PathBuf, extra: &[&str]) -> TlsServer {
        let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(extra);
        Self::spawn(db, command)
    }

    fn spawn(db: &Db, mut command: std::process::Command) -> TlsServer {
        let stderr_path = db.path().join("tls-server.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        command.stdout(Stdio::piped()).stderr(Stdio::from(stderr));
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let mut server = TlsServer {
            child,
            address: String::new(),
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    assert!(
                        !line.starts_with("listening on http://"),
                        "plain HTTP with --tls-cert: {line}"
                    );
                    if let Some(address) = line.strip_prefix("listening on https://") {
                        server.address = address.trim().to_owned();
                        return server;
                    }
                }
                Err(_) => panic!(
                    "no `listening on https://` line; stderr: {}",
                    server.stderr()
                ),
            }
        }
    }

    fn at(&self, path: &str) -> String {
        format!("https://{}{path}", self.address)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn https_client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_login_and_the_resource_over_https() {
    let db = Db::new();
    let (cert_pem, cert, key_file) = self_signed(&db, "server");
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let server = TlsServer::start(&db, &cert, &key_file, &[]);
    let client = https_client(&cert_pem);

    let response = client
        .post(server.at("/api/authentication/login"))
        .header("x-api-key", &key.key)
        .json(&json!({"username": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["accessToken"].as_str().unwrap().to_owned();

    let response = client
        .get(server.at("/v1/resource"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], EMAIL);

    // A client that does not trust the certificate is refused; plain HTTP on
    // the TLS port fails; neither stops the server nor is logged above debug.
    let logged_before = server.stderr().len();
    assert!(reqwest::Client::new()
        .get(server.at("/healthz"))
        .send()
        .await
        .is_err());
    let _ = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.address))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let response = client.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Over TLS every answer, refusals included, asks for HTTPS from now on.
    for path in ["/healthz", "/v1/resource", "/no/such/path"] {
        let response = client.get(server.at(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let log = server.stderr();
    let since = &log[logged_before..];
    for noisy in ["WARN", "ERROR", "handshake"] {
        assert!(!since.contains(noisy), "{noisy} in the server log: {since}");
    }
    for secret in [key.key.as_str(), token.as_str(), PASSWORD] {
        assert!(!log.contains(secret), "a secret in the server log");
    }
}

#[tokio::test]
async fn the_tls_handshake_is_bound_by_the_header_read_timeout() {
    let db = Db::new();
    let (cert_pem, cert, key_file) = self_signed(&db, "server");
    let server = TlsServer::start(&db, &cert, &key_file, &["--header-read-timeout", "1"]);
    let mut silent = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    let opened = Instant::now();
    let mut byte = [0_u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "a silent TLS client is not disconnected: {closed:?}"
    );
    assert!(opened.elapsed() >= Duration::from_millis(950));
    let response = https_client(&cert_pem)
        .get(server.at("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The files and limits from the config file; the environment wins over it.
#[tokio::test]
async fn tls_files_and_listener_limits_come_from_the_config_file() {
    let db = Db::new();
    let (cert_pem, cert, key_file) = self_signed(&db, "server");
    let config = db.path().join("assetpool.toml");
    std::fs::write(
        &config,
        format!(
            "tls-cert = {:?}\ntls-key = {:?}\nheader-read-timeout = 60\nmax-connections = 50\n\
             trusted-proxy = [\"10.0.0.0/8\", \"fd00::1\"]\n",
            cert.display().to_string(),
            key_file.display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0", "--config", config]);
    command.env("ASSETPOOL_HEADER_READ_TIMEOUT", "1");
    let server = TlsServer::spawn(&db, command);
    let response = https_client(&cert_pem)
        .get(server.at("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut silent = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    let mut byte = [0_u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the environment's header timeout (1 s) does not apply: {closed:?}"
    );
}

#[test]
fn bad_tls_settings_fail_with_one_line() {
    let db = Db::new();
    let (_, cert, key_file) = self_signed(&db, "server");
    let (_, _, other_key) = self_signed(&db, "other");
    let garbage = db.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").unwrap();
    let missing = db.path().join("missing.pem");
    let serve = |tls: &[&std::path::Path]| {
        let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
        for (flag, path) in ["--tls-cert", "--tls-key"].iter().zip(tls) {
            command.arg(flag).arg(path);
        }
        command
    };
    let cases: Vec<(Vec<&std::path::Path>, &str)> = vec![
        (vec![&cert], "--tls-key"),
        (
            vec![&missing, &key_file],
            "cannot read the TLS certificate file",
        ),
        (vec![&cert, &missing], "cannot read the TLS key file"),
        (vec![&garbage, &key_file], "invalid TLS certificate file"),
        (vec![&cert, &garbage], "invalid TLS key file"),
        (vec![&key_file, &key_file], "invalid TLS certificate file"),
        (vec![&cert, &other_key], "cannot be used together"),
    ];
    for (files, expected) in cases {
        let output = crate::helpers::output(serve(&files), None);
        let line = assert_clean_failure(&output);
        assert!(line.contains(expected), "{files:?}: {line}");
        assert!(!line.contains("PRIVATE KEY"), "{line}");
    }
    // Only the key, through the environment.
    let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    command.env("ASSETPOOL_TLS_KEY", &key_file);
    let line = assert_clean_failure(&crate::helpers::output(command, None));
    assert!(line.contains("--tls-cert"), "{line}");
}

/// SIGHUP reads the certificate files again: new handshakes get the renewed
/// certificate, a connection opened before keeps working, the server goes
/// on; files that cannot be used are logged and the certificate in use stays.
#[tokio::test]
async fn sighup_serves_a_renewed_certificate_without_dropping_connections() {
    let db = Db::new();
    let (old_pem, cert, key_file) = self_signed(&db, "server");
    let server = TlsServer::start(&db, &cert, &key_file, &[]);
    let trusts_old = https_client(&old_pem);
    let response = trusts_old.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // Renewal: new files in place, then SIGHUP.
    let (new_pem, _, _) = self_signed(&db, "server");
    send_signal(server.child.id(), "HUP");
    let trusts_new = https_client(&new_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match trusts_new.get(server.at("/healthz")).send().await {
            Ok(response) if response.status() == 200 => break,
            outcome => assert!(
                Instant::now() < deadline,
                "the renewed certificate is not served after SIGHUP: {outcome:?}; stderr: {}",
                server.stderr()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the reload is still served (its
    // handshake is done); a new client that trusts only the old certificate
    // is refused.
    let response = trusts_old.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(https_client(&old_pem)
        .get(server.at("/healthz"))
        .send()
        .await
        .is_err());
    let log = server.stderr();
    assert!(log.contains("reloaded"), "no reload logged: {log}");
    assert!(log.contains("leak-report keys"), "{log}");

    // A broken key file: logged, the renewed certificate stays in use.
    std::fs::write(&key_file, "not a PEM file\n").unwrap();
    send_signal(server.child.id(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("cannot reload") {
        assert!(
            Instant::now() < deadline,
            "no error logged: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = https_client(&new_pem)
        .get(server.at("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        server.stderr().contains("server.key"),
        "the error names the file"
    );
}
