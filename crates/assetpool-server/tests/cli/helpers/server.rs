//! A server child process killed when dropped, and HTTP helpers to talk to it.

use super::Db;
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

static SERVER_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A running `assetpool serve`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    lines: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
}

impl Server {
    /// `assetpool serve --listen 127.0.0.1:0 --database URL EXTRA...`, waiting
    /// (at most 20 s) for `listening on http://ADDR`.
    pub fn start(db: &Db, extra: &[&str]) -> Server {
        Self::start_with_env(db, extra, &[])
    }

    pub fn start_with_env(db: &Db, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
        command.args(extra).envs(env.iter().copied());
        Self::start_command(db, command)
    }

    /// `assetpool serve --listen 127.0.0.1:0 --database URL EXTRA...` run by
    /// `sh` under `umask MASK`, whatever the test runner's umask.
    pub fn start_under_umask(db: &Db, mask: &str, extra: &[&str]) -> Server {
        let mut command = super::command_under_umask(db.path(), mask);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &db.url])
            .args(extra);
        Self::start_command(db, command)
    }

    /// Starts `command` (a `serve`), its stderr in a file of `db`'s folder,
    /// waiting (at most 20 s) for `listening on http://ADDR`.
    pub fn start_command(db: &Db, mut command: Command) -> Server {
        let number = SERVER_COUNT.fetch_add(1, Ordering::SeqCst);
        let stderr_path = db.path().join(format!("server-{number}.stderr"));
        let stderr_file = std::fs::File::create(&stderr_path).expect("stderr file");
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        let mut child = command.spawn().expect("the server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = mpsc::channel::<String>();
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push(line.clone());
                let _ = sender.send(line);
            }
        });
        let mut server = Server {
            child,
            url: String::new(),
            lines,
            stderr_path,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    if let Some(address) = line.strip_prefix("listening on http://") {
                        server.url = format!("http://{}", address.trim());
                        return server;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "no `listening on` line within 20 s; stderr: {}",
                        server.stderr()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().ok();
                    panic!(
                        "the server exited ({status:?}) before listening; stderr: {}",
                        server.stderr()
                    )
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Everything printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Everything logged on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Asserts that no secret appears in the server's stderr.
    pub fn assert_no_secrets(&self, secrets: &[&str]) {
        let log = self.stderr();
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(
                !log.contains(secret),
                "a secret ({}...) appears on the server's stderr",
                &secret[..secret.len().min(12)]
            );
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most 15 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        send_signal(self.pid(), "TERM");
        self.wait_exit(Duration::from_secs(15))
    }

    /// Waits (at most `timeout`) for the exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {timeout:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends `signal` (`TERM`, `HUP`, ...) to process `pid`, without waiting.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Tokens from a successful login.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POST /api/authentication/login: (status, body).
pub async fn login(server: &Server, key: &str, username: &str, password: &str) -> (u16, Value) {
    let response = client()
        .post(server.at("/api/authentication/login"))
        .header("x-api-key", key)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A login that must succeed.
pub async fn login_ok(server: &Server, key: &str, username: &str, password: &str) -> Tokens {
    let (status, body) = login(server, key, username, password).await;
    assert_eq!(status, 200, "login failed: {body}");
    Tokens {
        access: body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned(),
        refresh: body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
        body,
    }
}

/// GET /v1/resource with a key and a token: (status, body).
pub async fn resource(server: &Server, key: &str, token: &str) -> (u16, Value) {
    let response = client()
        .get(server.at("/v1/resource"))
        .header("x-api-key", key)
        .header("x-api-token", token)
        .send()
        .await
        .expect("resource request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts GET /v1/resource answers 200.
pub async fn assert_resource_ok(server: &Server, key: &str, token: &str) -> Value {
    let (status, body) = resource(server, key, token).await;
    assert_eq!(status, 200, "GET /v1/resource: {body}");
    body
}

/// Asserts GET /v1/resource answers 401 with `code`.
pub async fn assert_resource_401(server: &Server, key: &str, token: &str, code: &str) {
    let (status, body) = resource(server, key, token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some(code)),
        "{body}"
    );
}

/// Polls GET /v1/resource from now until it answers 401 `code`; returns how long
/// that took. Gives up (panics) after 5 s.
pub async fn time_until_401(server: &Server, key: &str, token: &str, code: &str) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = resource(server, key, token).await;
        if status == 401 && body["error"] == code {
            let took = start.elapsed();
            eprintln!("401 {code} after {took:?}");
            return took;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {status} {body} 5 s later (expected 401 {code})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// GET a JSON document.
pub async fn get_json(server: &Server, path: &str) -> Value {
    let response = client().get(server.at(path)).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

/// The `kid` header of a JWT.
pub fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a kid")
}
