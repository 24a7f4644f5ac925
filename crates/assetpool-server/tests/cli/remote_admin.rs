//! `--server URL`: every admin command run twice, on the database and over
//! the admin API of a running server (with no database reachable), on
//! SQLite and PostgreSQL: the same stdout (`--json` and columns), the same
//! errors and exit codes (`reads`, `changes`); and the admin's credentials,
//! the refusals of a non-admin, a wrong password and an unreachable server,
//! and the commands that run on the database host only (`access`).

mod access;
mod changes;
mod reads;

use crate::helpers::{command, json_of, output, stderr, stdout, Db, Server, PASSWORD};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The admin's email.
pub const ADMIN: &str = "root@example.com";
/// A database nobody can reach: the remote form must not need one.
const NO_DATABASE: &str = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1";

/// A running server on `db`, its admin and the API key to reach it.
pub struct Remote {
    pub db: Db,
    pub server: Server,
    pub key: String,
    pub key_id: String,
}

impl Remote {
    /// Creates an admin user and a production key directly, then starts a server.
    pub fn start(db: Db) -> Remote {
        let admin = db.run_stdin(
            &[
                "users",
                "create",
                "--email",
                ADMIN,
                "--admin",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        );
        assert!(admin.status.success(), "{}", stderr(&admin));
        let key = db.create_key("admin console", "prod");
        let server = Server::start(&db, &[]);
        Remote {
            db,
            server,
            key: key.key,
            key_id: key.id,
        }
    }

    /// Waits until the admin key's last use is stored, so that further
    /// uses within the minute leave its JSON as it is.
    pub async fn settle_last_use(&self) {
        let start = Instant::now();
        loop {
            let output = self.remote(&["keys", "show", self.key_id.as_str(), "--json"]);
            if json_of(&output)["lastUsedAt"] != Value::Null {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no last use stored"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `assetpool ARGS` with no database, the admin's credentials in the
    /// environment (`ASSETPOOL_SERVER` not set: add `--server`).
    pub fn bare(&self, args: &[&str]) -> Command {
        let mut command = command(self.db.path());
        command
            .args(args)
            .env("ASSETPOOL_DATABASE_URL", NO_DATABASE)
            .env("ASSETPOOL_API_KEY", &self.key)
            .env("ASSETPOOL_USERNAME", ADMIN)
            .env("ASSETPOOL_PASSWORD", PASSWORD);
        command
    }

    /// `assetpool ARGS --server URL` (the admin's credentials in the environment).
    pub fn remote(&self, args: &[&str]) -> Output {
        self.remote_stdin(args, None)
    }

    pub fn remote_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.bare(args);
        command.arg("--server").arg(&self.server.url);
        output(command, stdin)
    }

    /// Runs `args` directly and remotely: asserts the same exit code, stdout
    /// and stderr; returns the remote output.
    pub fn same(&self, args: &[&str]) -> Output {
        self.same_as(args, args)
    }

    /// Runs `direct` on the database and `remote` over `--server` (the same
    /// command on other objects, set up alike): asserts the same exit code,
    /// and the same stdout and stderr once ids and times are masked.
    pub fn same_as(&self, direct: &[&str], remote: &[&str]) -> Output {
        let on_database = self.db.run(direct);
        let over_http = self.remote(remote);
        assert_same_outputs(&on_database, &over_http, &format!("{remote:?}"));
        over_http
    }

    /// Runs `template` with each placeholder replaced by its value of
    /// `direct` on the database and of `remote` over `--server`, and asserts
    /// the same answers once the remote values are put back to the direct
    /// ones (and ids and times are masked).
    pub fn same_filled(&self, template: &[&str], direct: &[(&str, &str)], remote: &[(&str, &str)]) {
        let fill = |values: &[(&str, &str)]| -> Vec<String> {
            template
                .iter()
                .map(|arg| {
                    values
                        .iter()
                        .find(|(name, _)| name == arg)
                        .map_or(*arg, |(_, value)| *value)
                        .to_owned()
                })
                .collect()
        };
        let (on_database, over_http) = (fill(direct), fill(remote));
        let on_database: Vec<&str> = on_database.iter().map(String::as_str).collect();
        let over_http: Vec<&str> = over_http.iter().map(String::as_str).collect();
        let on_database = self.db.run(&on_database);
        let answer = self.remote(&over_http);
        let back = |text: String| {
            remote
                .iter()
                .zip(direct)
                .fold(text, |text, ((_, theirs), (_, ours))| {
                    text.replace(theirs, ours)
                })
        };
        let what = format!("{over_http:?}");
        assert_eq!(
            on_database.status.code(),
            answer.status.code(),
            "{what}: {}",
            stderr(&answer)
        );
        assert_eq!(
            mask(&stdout(&on_database)),
            mask(&back(stdout(&answer))),
            "{what}: stdout"
        );
        assert_eq!(
            mask(&stderr(&on_database)),
            mask(&back(stderr(&answer))),
            "{what}: stderr"
        );
    }
}

/// Asserts two runs answered alike (ids and times masked).
pub fn assert_same_outputs(direct: &Output, remote: &Output, what: &str) {
    assert_eq!(
        direct.status.code(),
        remote.status.code(),
        "{what}: exit codes differ; direct stderr={} remote stderr={}",
        stderr(direct),
        stderr(remote)
    );
    assert_eq!(
        mask(&stdout(direct)),
        mask(&stdout(remote)),
        "{what}: stdout differs"
    );
    assert_eq!(
        mask(&stderr(direct)),
        mask(&stderr(remote)),
        "{what}: stderr differs"
    );
}

/// `text` with every id (`key_...`, `app_...`, an `apk_` key or prefix) and
/// every RFC 3339 time replaced by a placeholder of its kind.
pub fn mask(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut token = String::new();
    for character in text.chars() {
        if character.is_alphanumeric() || "_-:.+".contains(character) {
            token.push(character);
            continue;
        }
        masked.push_str(&mask_token(&token));
        token.clear();
        masked.push(character);
    }
    masked.push_str(&mask_token(&token));
    masked
}

fn mask_token(token: &str) -> String {
    const PREFIXES: [&str; 6] = ["key_", "app_", "usr_", "sig_", "alr_", "apk_"];
    if let Some(prefix) = PREFIXES.iter().find(|prefix| token.starts_with(**prefix)) {
        return format!("<{prefix}>");
    }
    if chrono::DateTime::parse_from_rfc3339(token.trim_end_matches('.')).is_ok() {
        return "<time>".to_owned();
    }
    token.to_owned()
}

pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}
