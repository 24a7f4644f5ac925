//! The real `assetpool` binary as a child process: seeding a database with the
//! admin commands, and `serve` with the options under test.

use crate::helpers::PASSWORD;
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn assetpool(database: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_assetpool"))
        .args(args)
        .args(["--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "assetpool {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

/// Seeds `database` with a production key and alice: the key.
pub fn seed(database: &str) -> String {
    seed_with_id(database).0
}

/// Seeds `database` with a production key and alice: (the key, its id).
pub fn seed_with_id(database: &str) -> (String, String) {
    let created: Value = serde_json::from_str(&assetpool(
        database,
        &[
            "keys", "create", "--name", "gateway", "--env", "prod", "--json",
        ],
        None,
    ))
    .unwrap();
    assetpool(
        database,
        &[
            "users",
            "create",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// Starts `assetpool serve` on `database` with `args` and `environment`: (server, URL).
pub fn serve(database: &str, args: &[&str], environment: &[(&str, &str)]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_assetpool"))
        .args(["serve", "--database", database, "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(environment.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let line = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find(|line| line.starts_with("listening on "))
        .unwrap();
    let url = line.trim_start_matches("listening on ").to_owned();
    (server, url)
}

/// Logs alice in through `url`: the access token.
pub async fn login(url: &str, key: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/api/authentication/login"))
        .header("x-api-key", key)
        .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["accessToken"].as_str().unwrap().to_owned()
}
