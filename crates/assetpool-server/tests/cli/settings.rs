//! Settings merged once (flag > environment > `_FILE` > config file >
//! default): file values checked exactly like flags with the file, line and
//! key named; durations (`90s`, `15m`, `24h`, `7d`) everywhere; `_FILE` forms
//! of secrets; `assetpool config check`.

use crate::helpers::{
    assert_clean_failure, command, json_of, login_ok, output, stdout, Db, Server, PASSWORD,
};
use serde_json::Value;
use std::path::PathBuf;

fn write(db: &Db, name: &str, contents: &str) -> PathBuf {
    let path = db.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// `config check --json` with `args` and `env`: the report.
fn check(db: &Db, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut check = command(db.path());
    check.args(["config", "check", "--json"]).args(args);
    for (name, value) in env {
        check.env(name, value);
    }
    let done = output(check, None);
    assert!(
        done.status.success(),
        "config check failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    json_of(&done)
}

/// The `(value, source)` of `key` in a `config check` report.
fn setting(report: &Value, key: &str) -> (Value, String) {
    let found = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|setting| setting["key"] == key)
        .unwrap_or_else(|| panic!("{key} is not listed: {report}"));
    (
        found["value"].clone(),
        found["source"].as_str().unwrap().to_owned(),
    )
}

/// A value the flag refuses is refused in the file too, with the same
/// reason, naming the file, the line and the key; the exit code is 1.
#[test]
fn a_file_value_is_checked_like_the_flag_and_named_with_its_line() {
    let db = Db::new();
    let flag = output(db.cmd(&["config", "check", "--token-ttl", "0"]), None);
    let flag_line = assert_clean_failure(&flag);
    assert!(flag_line.contains("between 1 and 31536000"), "{flag_line}");

    let path = write(
        &db,
        "assetpool.toml",
        "# comment\nlisten = \"127.0.0.1:0\"\ntoken-ttl = 0\n",
    );
    for subcommand in [vec!["config", "check"], vec!["serve"], vec!["keys", "list"]] {
        let mut run = command(db.path());
        run.args(&subcommand).arg("--config").arg(&path);
        let done = output(run, None);
        assert_eq!(done.status.code(), Some(1), "{subcommand:?}");
        let line = assert_clean_failure(&done);
        for part in [
            "assetpool.toml",
            "line 3",
            "token-ttl",
            "between 1 and 31536000",
        ] {
            assert!(line.contains(part), "{subcommand:?}: no {part:?} in {line}");
        }
    }

    for (contents, expected) in [
        ("\n\nrefresh-tl = 60\n", "line 3: unknown key refresh-tl"),
        ("environment = \"moon\"\n", "line 1: environment"),
        ("token-ttl = \"24 h\"\n", "line 1: token-ttl"),
        (
            "trusted-proxy = \"not a network\"\n",
            "line 1: trusted-proxy",
        ),
        (
            "max-connections = [1, 2]\n",
            "line 1: max-connections: takes one value",
        ),
        (
            "listen = \"a\\u001bb\"\n",
            "line 1: listen: holds a control character",
        ),
        ("token-ttl = \n", "line 1"),
    ] {
        let path = write(&db, "bad.toml", contents);
        let mut run = command(db.path());
        run.args(["config", "check", "--config"]).arg(&path);
        let line = assert_clean_failure(&output(run, None));
        assert!(line.contains(expected), "{contents:?}: {line}");
    }
}

/// Flags, environment, config file and the token lifetime they must give.
type Case<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    u64,
);

/// Durations are accepted as bare seconds or with a unit in flags, the
/// environment and the file, and reach the tokens and keys they set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_take_units_everywhere() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    db.create_user("alice@example.com", PASSWORD);
    let cases: [Case; 4] = [
        (&["--token-ttl", "15m"], &[], None, 900),
        (&[], &[("ASSETPOOL_TOKEN_TTL", "90s")], None, 90),
        (&[], &[], Some("token-ttl = \"24h\"\n"), 86_400),
        (
            &[],
            &[],
            Some("token-ttl = 120\nrefresh-ttl = \"7d\"\n"),
            120,
        ),
    ];
    for (flags, env, file, expected) in cases {
        let mut extra: Vec<String> = flags.iter().map(|flag| (*flag).to_owned()).collect();
        if let Some(contents) = file {
            let path = write(&db, "durations.toml", contents);
            extra.push("--config".to_owned());
            extra.push(path.display().to_string());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let server = Server::start_with_env(&db, &extra, env);
        let tokens = login_ok(&server, &key.key, "alice@example.com", PASSWORD).await;
        assert_eq!(
            tokens.body["expiresIn"].as_u64(),
            Some(expected),
            "{flags:?} {env:?} {file:?}"
        );
    }

    let created = db.json(&[
        "keys",
        "create",
        "--name",
        "week",
        "--env",
        "dev",
        "--expires-in",
        "7d",
        "--json",
    ]);
    let created_at =
        chrono::DateTime::parse_from_rfc3339(created["createdAt"].as_str().unwrap()).unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires_at - created_at).num_seconds(), 7 * 86_400);
    let id = created["id"].as_str().unwrap();
    let updated = db.json(&["keys", "update", id, "--expires-in", "24h", "--json"]);
    assert!(updated["expiresAt"].is_string(), "{updated}");
    let rotated = db.json(&["keys", "rotate", id, "--grace", "15m", "--json"]);
    assert!(rotated["key"].is_string(), "{rotated}");
    let line = assert_clean_failure(&db.run(&["keys", "rotate", id, "--grace", "2y"]));
    assert!(line.contains("--grace"), "{line}");
}

/// `config check` lists every setting with its source, applies the
/// precedence flag > environment > file, and redacts every secret.
#[test]
fn config_check_shows_sources_and_redacts_secrets() {
    let db = Db::new();
    let path = write(
        &db,
        "assetpool.toml",
        "database = \"postgres://app:file-password@db.example:5432/auth\"\n\
         token-ttl = \"2h\"\n\
         refresh-ttl = 3600\n\
         request-timeout = 30\n\
         alert-webhook = [\"https://hooks.example/T0/secret-path\"]\n\
         alert-webhook-secret = \"file-webhook-secret-0123456789\"\n\
         limits-store = \"redis://:redis-password@127.0.0.1:6379\"\n",
    );
    let path = path.to_str().unwrap();
    let report = check(
        &db,
        &["--config", path, "--refresh-ttl", "7200"],
        &[("ASSETPOOL_REQUEST_TIMEOUT", "45")],
    );
    assert_eq!(report["valid"], true);
    assert!(report["configFile"]
        .as_str()
        .unwrap()
        .ends_with("assetpool.toml"));
    assert_eq!(
        setting(&report, "token-ttl"),
        ("2h".into(), "config file, line 2".into())
    );
    assert_eq!(
        setting(&report, "refresh-ttl"),
        ("7200".into(), "flag".into())
    );
    assert_eq!(
        setting(&report, "request-timeout"),
        ("45".into(), "environment ASSETPOOL_REQUEST_TIMEOUT".into())
    );
    assert_eq!(setting(&report, "listen").1, "default");
    let (database, source) = setting(&report, "database");
    assert_eq!(source, "config file, line 1");
    assert!(
        database.as_str().unwrap().contains("db.example"),
        "{database}"
    );

    let mut human = command(db.path());
    human.args(["config", "check", "--config", path]);
    let human = output(human, None);
    assert!(human.status.success());
    let printed = format!("{}{report}", stdout(&human));
    assert!(printed.contains("token-ttl"));
    for secret in [
        "file-password",
        "secret-path",
        "file-webhook-secret-0123456789",
        "redis-password",
    ] {
        assert!(!printed.contains(secret), "config check printed {secret}");
    }
    // Nor does --help show a value the file gave.
    let mut help = command(db.path());
    help.args(["serve", "--help", "--config", path]);
    let help = stdout(&output(help, None));
    assert!(help.contains("--token-ttl"));
    for secret in [
        "file-password",
        "file-webhook-secret-0123456789",
        "redis-password",
    ] {
        assert!(!help.contains(secret), "--help printed {secret}");
    }

    // A setting serve refuses as a whole (a webhook without its secret) is
    // refused by config check too.
    let path = write(
        &db,
        "webhook.toml",
        "alert-webhook = \"https://hooks.example/x\"\n",
    );
    let mut run = command(db.path());
    run.args(["config", "check", "--config"]).arg(&path);
    let line = assert_clean_failure(&output(run, None));
    assert!(line.contains("--alert-webhook-secret"), "{line}");
}

/// A password in a URL's query string is redacted too; a config file may not
/// say where admin commands send their credentials.
#[test]
fn query_passwords_are_redacted_and_the_file_cannot_set_the_admin_server() {
    let db = Db::new();
    let report = check(
        &db,
        &[],
        &[(
            "ASSETPOOL_DATABASE_URL",
            "postgres://127.0.0.1:1/ap?user=u&password=S3cret-in-query",
        )],
    );
    let (database, _) = setting(&report, "database");
    assert!(!report.to_string().contains("S3cret-in-query"), "{report}");
    assert!(
        database.as_str().unwrap().contains("password=[redacted]"),
        "{database}"
    );

    for key in [
        "server = \"https://elsewhere.example\"",
        "password-stdin = true",
    ] {
        let path = write(&db, "remote.toml", &format!("{key}\n"));
        let mut run = command(db.path());
        run.args(["keys", "list", "--config"]).arg(&path);
        let line = assert_clean_failure(&output(run, None));
        assert!(
            line.contains("command line or the environment only"),
            "{key}: {line}"
        );
    }
}

/// In reverse-proxy mode the console is off unless asked for: it would share
/// its origin with the upstream application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_by_default_in_reverse_proxy_mode() {
    let db = Db::new();
    for (extra, served) in [
        (&["--upstream", "http://127.0.0.1:9"][..], false),
        (
            &["--upstream", "http://127.0.0.1:9", "--console", "true"][..],
            true,
        ),
        (&[][..], true),
    ] {
        let server = Server::start(&db, extra);
        let response = crate::helpers::client()
            .get(server.at("/console/sign-in"))
            .send()
            .await
            .unwrap();
        let is_console =
            response.status() == 200 && response.headers().get("content-security-policy").is_some();
        assert_eq!(is_console, served, "{extra:?}: {}", response.status());
    }
}

/// Every secret option reads a file named by its variable with `_FILE`
/// appended; the variable itself wins over the file, the file over the
/// config file.
#[test]
fn secrets_come_from_files_named_by_their_variables() {
    let db = database_with_key();
    let url_file = write(&db, "database-url", &format!("{}\n", db.url));
    let mut list = command(db.path());
    list.args(["keys", "list", "--json"])
        .env("ASSETPOOL_DATABASE_URL_FILE", &url_file);
    let listed = json_of(&output(list, None));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let limits_file = write(
        &db,
        "limits-store",
        "redis://:redis-password@127.0.0.1:6379/2\n",
    );
    let config = write(
        &db,
        "assetpool.toml",
        "limits-store = \"redis://127.0.0.1:6379/9\"\n",
    );
    let report = check(
        &db,
        &["--config", config.to_str().unwrap()],
        &[
            ("ASSETPOOL_LIMITS_STORE_FILE", limits_file.to_str().unwrap()),
            ("ASSETPOOL_DATABASE_URL_FILE", url_file.to_str().unwrap()),
        ],
    );
    let (value, source) = setting(&report, "limits-store");
    assert_eq!(source, "file of ASSETPOOL_LIMITS_STORE_FILE");
    assert!(
        value.as_str().unwrap().ends_with("127.0.0.1:6379/2"),
        "{value}"
    );
    assert!(!report.to_string().contains("redis-password"));
    assert_eq!(
        setting(&report, "database").1,
        "file of ASSETPOOL_DATABASE_URL_FILE"
    );

    let report = check(
        &db,
        &[],
        &[
            ("ASSETPOOL_LIMITS_STORE", "redis://127.0.0.1:6379/3"),
            ("ASSETPOOL_LIMITS_STORE_FILE", limits_file.to_str().unwrap()),
        ],
    );
    assert_eq!(
        setting(&report, "limits-store").1,
        "environment ASSETPOOL_LIMITS_STORE"
    );

    let secret_file = write(&db, "webhook-secret", "short\n");
    let mut run = command(db.path());
    run.args(["config", "check"])
        .env("ASSETPOOL_ALERT_WEBHOOK_SECRET_FILE", &secret_file);
    let line = assert_clean_failure(&output(run, None));
    assert!(line.contains("at least 16"), "{line}");
    assert!(!line.contains("short"), "{line}");

    let mut run = command(db.path());
    run.args(["keys", "list"])
        .env("ASSETPOOL_DATABASE_URL_FILE", db.path().join("missing"));
    let line = assert_clean_failure(&output(run, None));
    assert!(line.contains("ASSETPOOL_DATABASE_URL_FILE"), "{line}");
}

fn database_with_key() -> Db {
    let db = Db::new();
    db.create_key("k", "dev");
    db
}

/// A password typed at a terminal (`users create --password-stdin` with a
/// terminal as standard input) is asked for and not echoed. The terminal is
/// util-linux `script`'s; the password is typed once the prompt shows, so the
/// terminal's own echo, if it were on, would print it.
#[test]
fn a_password_typed_at_a_terminal_is_not_echoed() {
    use std::io::{Read as _, Write as _};
    use std::process::Stdio;
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux script is not installed");
        return;
    }
    let db = Db::new();
    let line = format!(
        "{} users create --email typed@example.com --password-stdin --database {}",
        crate::helpers::BIN,
        db.url
    );
    let mut script = std::process::Command::new("script");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ASSETPOOL_") {
            script.env_remove(name);
        }
    }
    let mut child = script
        .args(["-qfec", &line, "/dev/null"])
        .current_dir(db.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0_u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Password:") {
        let read = stdout.read(&mut buffer).unwrap();
        assert!(read > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..read]);
    }
    // The prompt is printed just before echo is switched off: give the
    // command a moment to switch it off before typing.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut input = child.stdin.take().unwrap();
    input.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    input.flush().unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    drop(input);
    let status = child.wait().unwrap();
    let shown = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{shown}");
    assert!(
        !shown.contains(PASSWORD),
        "the password was echoed: {shown}"
    );
    let users = db.json(&["users", "list", "--json"]);
    assert!(users.to_string().contains("typed@example.com"), "{users}");
}
