//! Shared helpers: a fresh database per test, running the real `assetpool`
//! binary; `server` has the server child process and HTTP helpers.

mod server;

pub use server::*;

use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_assetpool");
/// A password that passes the length and common-password checks.
pub const PASSWORD: &str = "correct horse battery staple 42";

/// A command for the binary, run in `cwd`, inheriting no `ASSETPOOL_*` variable.
pub fn command(cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ASSETPOOL_") {
            command.env_remove(name);
        }
    }
    command.current_dir(cwd).stdin(Stdio::null());
    command
}

/// As [`command`], with the binary run by `sh` under `umask MASK` (the
/// arguments added afterwards go to the binary).
pub fn command_under_umask(cwd: &Path, mask: &str) -> Command {
    let mut command = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ASSETPOOL_") {
            command.env_remove(name);
        }
    }
    command
        .arg("-c")
        .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
        .arg(BIN)
        .current_dir(cwd)
        .stdin(Stdio::null());
    command
}

/// Runs `command`, writing `stdin` (if any) to its standard input.
pub fn output(mut command: Command, stdin: Option<&str>) -> Output {
    if stdin.is_none() {
        return command.output().expect("the binary runs");
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    {
        let mut input = child.stdin.take().expect("piped stdin");
        // A command refused by argument parsing exits without reading stdin:
        // a broken pipe then is not the test's failure.
        if let Err(error) = input.write_all(stdin.unwrap_or_default().as_bytes()) {
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe,
                "stdin written: {error}"
            );
        }
    }
    child.wait_with_output().expect("the binary finishes")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and parses stdout as exactly one JSON document.
pub fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "command failed ({}): stdout={} stderr={}",
        output.status,
        stdout(output),
        stderr(output)
    );
    serde_json::from_str(&stdout(output)).unwrap_or_else(|error| {
        panic!(
            "stdout is not exactly one JSON document ({error}): {}",
            stdout(output)
        )
    })
}

/// Asserts a clean failure: non-zero exit, nothing on stdout, and one line on
/// stderr starting with `error:` without panic or backtrace text. Returns that line.
pub fn assert_clean_failure(output: &Output) -> String {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "expected a failure, got success; stdout={} stderr={err}",
        stdout(output)
    );
    assert!(
        output.status.code().is_some(),
        "killed by a signal: {}",
        output.status
    );
    let line = err.trim_end_matches(['\n', '\r']);
    assert!(!line.is_empty(), "no error message on stderr");
    assert!(
        !line.contains('\n'),
        "stderr has more than one line: {err:?}"
    );
    assert!(
        line.starts_with("error:"),
        "stderr is not `error: ...`: {err:?}"
    );
    for forbidden in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "internal error",
    ] {
        assert!(
            !err.contains(forbidden),
            "stderr has {forbidden:?}: {err:?}"
        );
    }
    assert!(
        stdout(output).trim().is_empty(),
        "stdout is not empty on failure: {}",
        stdout(output)
    );
    line.to_owned()
}

/// A temporary directory (the commands' working directory, where servers'
/// stderr files go) and a fresh database: SQLite in that directory, or a
/// PostgreSQL schema of its own.
pub struct Db {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// Keeps the PostgreSQL schema alive; dropping it drops the schema.
    _schema: Option<assetpool_store_tests::postgres::TestSchema>,
}

impl Db {
    pub fn new() -> Db {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        Db {
            dir,
            url,
            _schema: None,
        }
    }

    /// A fresh PostgreSQL schema, or `None` (after a skip line on stderr) when
    /// PostgreSQL is unreachable and `ASSETPOOL_REQUIRE_POSTGRES` is not `1`.
    pub async fn postgres(test: &str) -> Option<Db> {
        let schema = assetpool_store_tests::postgres::fresh_schema(test).await?;
        let dir = tempfile::tempdir().expect("temporary directory");
        Some(Db {
            dir,
            url: schema.url.clone(),
            _schema: Some(schema),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `assetpool ARGS --database URL`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut command = command(self.path());
        command.args(args).arg("--database").arg(&self.url);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        output(self.cmd(args), None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        output(self.cmd(args), Some(stdin))
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed ({}): {}",
            output.status,
            stderr(&output)
        );
        stdout(&output)
    }

    /// Runs and parses the one JSON document on stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        json_of(&self.run(args))
    }

    /// `keys create --name NAME --env ENV --json`.
    pub fn create_key(&self, name: &str, environment: &str) -> Key {
        Key::from_json(&self.json(&[
            "keys",
            "create",
            "--name",
            name,
            "--env",
            environment,
            "--json",
        ]))
    }

    /// `keys show ID --json`.
    pub fn show_key(&self, id: &str) -> Value {
        self.json(&["keys", "show", id, "--json"])
    }

    /// `users create --email EMAIL --password-stdin --json`.
    pub fn create_user(&self, email: &str, password: &str) -> Value {
        json_of(&self.run_stdin(
            &[
                "users",
                "create",
                "--email",
                email,
                "--password-stdin",
                "--json",
            ],
            &format!("{password}\n"),
        ))
    }
}

impl Db {
    /// Runs `statement` on a connection of its own, as someone with write
    /// access to the database would (bypassing assetpool).
    pub async fn sql(&self, statement: &str) {
        use sqlx::Connection as _;
        if self.url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
            connection.close().await.unwrap();
        } else {
            let mut connection = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
            connection.close().await.unwrap();
        }
    }
}

/// The name of the user running the tests, as the system knows it (`id -un`).
pub fn process_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// An issued API key.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub key: String,
    pub application: String,
}

impl Key {
    pub fn from_json(value: &Value) -> Key {
        Key {
            id: value["id"].as_str().expect("id").to_owned(),
            key: value["key"].as_str().expect("key").to_owned(),
            application: value["application"]
                .as_str()
                .expect("application")
                .to_owned(),
        }
    }
}

/// Checks the key format: `apk_<env>_` + 32 base62 + CRC32 as 6 base62 characters.
pub fn assert_key_format(key: &str, short_env: &str) {
    let prefix = format!("apk_{short_env}_");
    let tail = key
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{key} does not start with {prefix}"));
    assert_eq!(tail.len(), 38, "{key}: tail is not 38 characters");
    assert!(
        tail.bytes().all(|byte| byte.is_ascii_alphanumeric()),
        "{key}: not base62"
    );
    let (head, check) = key.split_at(key.len() - 6);
    assert_eq!(
        check,
        base62_6(crc32(head.as_bytes())),
        "{key}: bad checksum"
    );
}

/// A key nobody issued whose shape and checksum are valid (anyone can make
/// one: the checksum only catches typos).
pub fn made_up_key(short_env: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let random = uuid::Uuid::new_v4().as_u128() ^ (uuid::Uuid::new_v4().as_u128() >> 7);
    let body: String = (0..32)
        .map(|index| ALPHABET[((random >> (index * 3)) % 62) as usize] as char)
        .collect();
    let head = format!("apk_{short_env}_{body}");
    let check = base62_6(crc32(head.as_bytes()));
    format!("{head}{check}")
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn base62_6(mut value: u32) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out).unwrap()
}

/// Asserts `value` is an RFC 3339 UTC timestamp.
pub fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("{text} is not RFC 3339: {error}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text} is not UTC");
}

/// The sorted keys of a JSON object.
pub fn fields(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[macro_export]
/// Runs a test body once on SQLite and once on PostgreSQL (skipped, with a
/// line on stderr, when PostgreSQL is unreachable and not required).
macro_rules! on_both_backends {
    ($($name:ident => $body:ident;)*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$body($crate::helpers::Db::new()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = $crate::helpers::Db::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$body(db).await;
                }
            }
        )*
    };
}
