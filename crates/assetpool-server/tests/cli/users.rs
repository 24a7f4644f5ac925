//! `assetpool users ...`

use crate::helpers::{
    assert_clean_failure, assert_timestamp, fields, json_of, stderr, Db, PASSWORD,
};
use serde_json::Value;

fn create(db: &Db, email: &str, password: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "users",
        "create",
        "--email",
        email,
        "--password-stdin",
        "--json",
    ];
    args.extend_from_slice(extra);
    db.run_stdin(&args, &format!("{password}\n"))
}

fn list(db: &Db) -> Vec<Value> {
    db.json(&["users", "list", "--json"])
        .as_array()
        .expect("an array")
        .clone()
}

fn user<'a>(users: &'a [Value], email: &str) -> &'a Value {
    users
        .iter()
        .find(|user| user["email"] == email)
        .unwrap_or_else(|| panic!("{email} not listed"))
}

#[test]
fn create_reads_the_password_from_stdin_and_prints_json() {
    let db = Db::new();
    let output = create(&db, "Alice@Example.COM", PASSWORD, &[]);
    let value = json_of(&output);
    let names: Vec<String> = fields(&value)
        .into_iter()
        .filter(|name| name != "disabled")
        .collect();
    assert_eq!(names, ["admin", "createdAt", "email", "id", "scopes"]);
    assert!(value["scopes"].is_null(), "unrestricted: {value}");
    assert_eq!(
        value["email"], "alice@example.com",
        "the email is not lowercased"
    );
    assert_eq!(value["admin"], false);
    assert!(!value["id"].as_str().unwrap().is_empty());
    assert_timestamp(&value["createdAt"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains(PASSWORD) && !stderr(&output).contains(PASSWORD));
}

#[test]
fn create_admin() {
    let db = Db::new();
    let value = json_of(&create(&db, "root@example.com", PASSWORD, &["--admin"]));
    assert_eq!(value["admin"], true);
    let users = list(&db);
    assert_eq!(user(&users, "root@example.com")["admin"], true);
}

#[test]
fn duplicate_email_fails_whatever_its_case() {
    let db = Db::new();
    json_of(&create(&db, "bob@example.com", PASSWORD, &[]));
    assert_clean_failure(&create(
        &db,
        "bob@example.com",
        "another long password 1",
        &[],
    ));
    assert_clean_failure(&create(
        &db,
        "BOB@example.com",
        "another long password 2",
        &[],
    ));
    assert_eq!(list(&db).len(), 1);
}

#[test]
fn short_password_fails() {
    let db = Db::new();
    let line = assert_clean_failure(&create(&db, "carol@example.com", "elevenchars", &[]));
    assert!(
        !line.contains("elevenchars"),
        "the error echoes the password"
    );
    assert!(list(&db).is_empty());
}

#[test]
fn common_password_fails() {
    let db = Db::new();
    let line = assert_clean_failure(&create(&db, "dave@example.com", "password1234", &[]));
    assert!(
        !line.contains("password1234"),
        "the error echoes the password"
    );
    assert!(list(&db).is_empty());
}

#[test]
fn empty_stdin_fails() {
    let db = Db::new();
    assert_clean_failure(&create(&db, "erin@example.com", "", &[]));
    assert!(list(&db).is_empty());
}

#[test]
fn create_without_password_stdin_is_a_usage_error() {
    let db = Db::new();
    let output = db.run_stdin(
        &["users", "create", "--email", "frank@example.com", "--json"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.starts_with("error:"), "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
    assert!(!err.contains("panicked"));
    // A password on the command line is not an option.
    let output = db.run(&[
        "users",
        "create",
        "--email",
        "frank@example.com",
        "--password",
        PASSWORD,
    ]);
    assert!(!output.status.success());
    assert!(list(&db).is_empty());
}

#[test]
fn list_shows_every_user_without_secrets() {
    let db = Db::new();
    let alice = json_of(&create(&db, "alice@example.com", PASSWORD, &[]));
    json_of(&create(&db, "root@example.com", PASSWORD, &["--admin"]));
    let output = db.run(&["users", "list", "--json"]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
    let users = json_of(&output);
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2);
    let listed = user(users, "alice@example.com");
    assert_eq!(listed["id"], alice["id"]);
    assert_eq!(listed["admin"], false);
    assert_eq!(listed["createdAt"], alice["createdAt"]);
    assert_eq!(user(users, "root@example.com")["admin"], true);
    let table = db.ok(&["users", "list"]);
    assert!(table.contains("alice@example.com") && table.contains("root@example.com"));
}

#[test]
fn disable_and_enable() {
    let db = Db::new();
    json_of(&create(&db, "gina@example.com", PASSWORD, &[]));
    db.ok(&["users", "disable", "gina@example.com"]);
    assert_eq!(user(&list(&db), "gina@example.com")["disabled"], true);
    // Emails match case-insensitively.
    db.ok(&["users", "enable", "GINA@example.com"]);
    assert_eq!(user(&list(&db), "gina@example.com")["disabled"], false);
    assert_clean_failure(&db.run(&["users", "disable", "nobody@example.com"]));
}

#[test]
fn set_password_reads_stdin_and_checks_the_policy() {
    let db = Db::new();
    json_of(&create(&db, "hank@example.com", PASSWORD, &[]));
    let args = [
        "users",
        "set-password",
        "hank@example.com",
        "--password-stdin",
    ];
    let output = db.run_stdin(&args, "a brand new passphrase 7\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_clean_failure(&db.run_stdin(&args, "short\n"));
    assert_clean_failure(&db.run_stdin(&args, "password1234\n"));
    assert_clean_failure(&db.run_stdin(
        &[
            "users",
            "set-password",
            "nobody@example.com",
            "--password-stdin",
        ],
        "a brand new passphrase 7\n",
    ));
    let output = db.run(&["users", "set-password", "hank@example.com"]);
    assert!(
        !output.status.success(),
        "set-password without --password-stdin succeeded"
    );
}
