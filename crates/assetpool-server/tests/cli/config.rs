//! Global options: `--database`, `ASSETPOOL_DATABASE_URL`, `--config`, and their precedence.

use crate::helpers::{assert_clean_failure, command, json_of, output, Db};
use std::path::PathBuf;
use std::process::Command;

/// The names of the keys `keys list --json` shows for `command`.
fn names(command: Command) -> Vec<String> {
    let keys = json_of(&output(command, None));
    keys.as_array()
        .expect("an array")
        .iter()
        .map(|key| key["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A database holding one key named `name`.
fn database_with_key(name: &str) -> Db {
    let db = Db::new();
    db.create_key(name, "dev");
    db
}

fn config_file(db: &Db, contents: &str) -> PathBuf {
    let path = db.path().join("assetpool.toml");
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn global_options_stand_before_or_after_the_subcommand() {
    let db = Db::new();
    // Before the subcommand, to create.
    let mut before = command(db.path());
    before.args([
        "--database",
        &db.url,
        "keys",
        "create",
        "--name",
        "before",
        "--env",
        "dev",
        "--json",
    ]);
    json_of(&output(before, None));
    // Between the command and its subcommand, and after it.
    let mut middle = command(db.path());
    middle.args([
        "keys",
        "--database",
        &db.url,
        "create",
        "--name",
        "middle",
        "--env",
        "dev",
        "--json",
    ]);
    json_of(&output(middle, None));
    let mut after = command(db.path());
    after.args(["keys", "list", "--json", "--database", &db.url]);
    assert_eq!(names(after), ["before", "middle"]);
    let mut first = command(db.path());
    first.args(["--database", &db.url, "keys", "list", "--json"]);
    assert_eq!(names(first), ["before", "middle"]);
}

#[test]
fn database_from_the_environment() {
    let db = database_with_key("from-env");
    let mut list = command(db.path());
    list.args(["keys", "list", "--json"])
        .env("ASSETPOOL_DATABASE_URL", &db.url);
    assert_eq!(names(list), ["from-env"]);
}

#[test]
fn database_from_the_config_file() {
    let db = database_with_key("from-file");
    let path = config_file(&db, &format!("database = \"{}\"\n", db.url));
    let mut list = command(db.path());
    list.args(["keys", "list", "--json", "--config"]).arg(&path);
    assert_eq!(names(list), ["from-file"]);
    // ASSETPOOL_CONFIG names the file too.
    let mut by_env = command(db.path());
    by_env
        .args(["keys", "list", "--json"])
        .env("ASSETPOOL_CONFIG", &path);
    assert_eq!(names(by_env), ["from-file"]);
}

#[test]
fn flag_beats_environment_beats_config_file() {
    let flag = database_with_key("flag");
    let env = database_with_key("env");
    let file = database_with_key("file");
    let path = config_file(&file, &format!("database = \"{}\"\n", file.url));
    let cwd = file.path();

    let mut all = command(cwd);
    all.args([
        "keys",
        "list",
        "--json",
        "--database",
        &flag.url,
        "--config",
    ])
    .arg(&path)
    .env("ASSETPOOL_DATABASE_URL", &env.url);
    assert_eq!(names(all), ["flag"], "the flag must win");

    let mut env_and_file = command(cwd);
    env_and_file
        .args(["keys", "list", "--json", "--config"])
        .arg(&path)
        .env("ASSETPOOL_DATABASE_URL", &env.url);
    assert_eq!(
        names(env_and_file),
        ["env"],
        "the environment must beat the file"
    );

    let mut flag_and_file = command(cwd);
    flag_and_file.args(["--config"]).arg(&path).args([
        "keys",
        "list",
        "--json",
        "--database",
        &flag.url,
    ]);
    assert_eq!(
        names(flag_and_file),
        ["flag"],
        "the flag must beat the file"
    );
}

#[test]
fn unknown_key_in_the_config_file_is_a_clear_error() {
    let db = database_with_key("k");
    let path = config_file(&db, &format!("databse = \"{}\"\n", db.url));
    let mut list = command(db.path());
    list.args(["keys", "list", "--json", "--config"]).arg(&path);
    let line = assert_clean_failure(&output(list, None));
    assert!(
        line.contains("databse"),
        "the error does not name the unknown key: {line}"
    );
    assert!(
        line.contains("assetpool.toml"),
        "the error does not name the file: {line}"
    );
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let db = Db::new();
    let mut list = command(db.path());
    list.args(["keys", "list", "--config", "does-not-exist.toml"]);
    let line = assert_clean_failure(&output(list, None));
    assert!(line.contains("does-not-exist.toml"), "{line}");
}

/// The PostgreSQL pool settings: a server with a small pool and a statement
/// timeout serves logins and resources; a config-file value out of range is
/// one error line naming its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_pool_settings_apply_and_file_values_are_checked() {
    use crate::helpers::{assert_resource_ok, login_ok, Server, PASSWORD};
    let Some(db) = Db::postgres("pool_settings").await else {
        return;
    };
    let key = db.create_key("shop", "prod");
    db.create_user("alice@example.com", PASSWORD);
    let server = Server::start(
        &db,
        &[
            "--database-pool-size",
            "2",
            "--database-statement-timeout",
            "5",
        ],
    );
    let tokens = login_ok(&server, &key.key, "alice@example.com", PASSWORD).await;
    for _ in 0..5 {
        assert_resource_ok(&server, &key.key, &tokens.access).await;
    }

    for (contents, key) in [
        ("database-pool-size = 0\n", "database-pool-size"),
        (
            "database-statement-timeout = 100000\n",
            "database-statement-timeout",
        ),
    ] {
        let path = config_file(&db, contents);
        let path = path.to_str().unwrap();
        let serve = db.cmd(&["serve", "--listen", "127.0.0.1:0", "--config", path]);
        let line = assert_clean_failure(&output(serve, None));
        assert!(line.contains(key), "the error does not name {key}: {line}");
    }
}

/// `completions SHELL` prints a script the shell accepts, naming the commands.
#[test]
fn completions_print_a_script_for_each_shell() {
    let db = Db::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef assetpool"),
        ("fish", "complete -c assetpool"),
    ] {
        let mut completions = command(db.path());
        completions.args(["completions", shell]);
        let printed = output(completions, None);
        assert!(printed.status.success(), "completions {shell} failed");
        let script = String::from_utf8(printed.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(
            script.contains("signing-keys"),
            "{shell}: a command is missing"
        );
        if shell == "bash" {
            let path = db.path().join("assetpool.bash");
            std::fs::write(&path, &script).unwrap();
            let checked = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(checked.status.success(), "bash -n refuses the script");
        }
    }
    let mut unknown = command(db.path());
    unknown.args(["completions", "tcsh"]);
    let line = assert_clean_failure(&output(unknown, None));
    assert!(line.contains("tcsh"), "{line}");
}
