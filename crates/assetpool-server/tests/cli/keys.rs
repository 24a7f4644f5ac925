//! `assetpool keys ...`

use crate::helpers::{
    assert_clean_failure, assert_key_format, assert_timestamp, fields, stdout, Db, Key,
};
use serde_json::Value;

const LISTED_FIELDS: [&str; 13] = [
    "allowedCidrs",
    "application",
    "createdAt",
    "environment",
    "expiresAt",
    "id",
    "lastUsedAt",
    "metadata",
    "name",
    "owner",
    "prefix",
    "scopes",
    "status",
];

/// The fields of a listed key, without the optional revocation/rotation extras.
fn listed_fields(value: &Value) -> Vec<String> {
    fields(value)
        .into_iter()
        .filter(|name| !["revokedAt", "revokedReason", "successor"].contains(&name.as_str()))
        .collect()
}

fn assert_created_shape(value: &Value, name: &str, environment: &str, short: &str) {
    assert_eq!(
        fields(value),
        [
            "application",
            "createdAt",
            "environment",
            "expiresAt",
            "id",
            "key",
            "name",
            "scopes"
        ]
    );
    assert!(value["scopes"].is_null(), "unrestricted: {value}");
    assert_eq!(value["name"], name);
    assert_eq!(value["environment"], environment);
    assert!(value["expiresAt"].is_null(), "{value}");
    assert!(!value["id"].as_str().unwrap().is_empty());
    assert!(!value["application"].as_str().unwrap().is_empty());
    assert_timestamp(&value["createdAt"]);
    assert_key_format(value["key"].as_str().unwrap(), short);
}

fn status_of(db: &Db, id: &str) -> String {
    db.show_key(id)["status"].as_str().unwrap().to_owned()
}

#[test]
fn create_prints_one_json_document_with_the_secret() {
    let db = Db::new();
    let output = db.run(&[
        "keys", "create", "--name", "billing", "--env", "dev", "--json",
    ]);
    let value = crate::helpers::json_of(&output);
    assert_created_shape(&value, "billing", "development", "dev");
    // Only the JSON on stdout.
    assert!(stdout(&output).trim_start().starts_with('{'));
    assert!(stdout(&output).trim_end().ends_with('}'));
}

#[test]
fn create_accepts_short_and_long_environment_names() {
    let db = Db::new();
    for (flag, environment, short) in [
        ("dev", "development", "dev"),
        ("development", "development", "dev"),
        ("stg", "staging", "stg"),
        ("staging", "staging", "stg"),
        ("prod", "production", "prod"),
        ("production", "production", "prod"),
    ] {
        let value = db.json(&["keys", "create", "--name", "k", "--env", flag, "--json"]);
        assert_created_shape(&value, "k", environment, short);
    }
    let output = db.run(&["keys", "create", "--name", "k", "--env", "qa", "--json"]);
    assert!(!output.status.success(), "--env qa was accepted");
}

#[test]
fn create_with_application_adds_a_key_to_that_application() {
    let db = Db::new();
    let first = db.create_key("first", "prod");
    let second = Key::from_json(&db.json(&[
        "keys",
        "create",
        "--name",
        "second",
        "--env",
        "prod",
        "--application",
        &first.application,
        "--json",
    ]));
    assert_eq!(second.application, first.application);
    assert_ne!(second.id, first.id);
    assert_ne!(second.key, first.key);
    // Without --application, each key gets its own application.
    let third = db.create_key("third", "prod");
    assert_ne!(third.application, first.application);
}

#[test]
fn create_with_unknown_application_fails_cleanly() {
    let db = Db::new();
    db.create_key("first", "dev");
    let output = db.run(&[
        "keys",
        "create",
        "--name",
        "x",
        "--env",
        "dev",
        "--application",
        "app_does_not_exist",
        "--json",
    ]);
    assert_clean_failure(&output);
    let keys = db.json(&["keys", "list", "--json"]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "a key was created anyway: {keys}"
    );
}

#[test]
fn list_shows_every_field_but_never_the_secret() {
    let db = Db::new();
    let dev = db.create_key("dev key", "dev");
    let prod = db.create_key("prod key", "prod");
    let output = db.run(&["keys", "list", "--json"]);
    let text = stdout(&output);
    let keys = crate::helpers::json_of(&output);
    let keys = keys.as_array().expect("an array");
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(listed_fields(key), LISTED_FIELDS);
        assert_eq!(key["status"], "active");
        assert!(key["lastUsedAt"].is_null());
        assert_timestamp(&key["createdAt"]);
        let prefix = key["prefix"].as_str().unwrap();
        let secret = if key["id"] == dev.id.as_str() {
            &dev.key
        } else {
            &prod.key
        };
        assert!(
            secret.starts_with(prefix),
            "{prefix} is not a prefix of the key"
        );
        assert!(
            prefix.len() < secret.len() - 20,
            "the prefix gives away the secret"
        );
    }
    for secret in [&dev.key, &prod.key] {
        assert!(!text.contains(secret.as_str()), "keys list shows a secret");
        // Not even the random body without its prefix.
        assert!(!text.contains(&secret[secret.len() - 30..]));
    }
    let table = db.ok(&["keys", "list"]);
    assert!(table.contains(&dev.id) && !table.contains(&dev.key));
}

#[test]
fn list_filters_by_environment() {
    let db = Db::new();
    let dev = db.create_key("a", "dev");
    let stg = db.create_key("b", "stg");
    let prod = db.create_key("c", "production");
    for (flag, expected) in [("dev", &dev), ("staging", &stg), ("prod", &prod)] {
        let keys = db.json(&["keys", "list", "--env", flag, "--json"]);
        let ids: Vec<&str> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [expected.id.as_str()], "--env {flag}");
    }
}

#[test]
fn show_returns_the_listed_object() {
    let db = Db::new();
    let key = db.create_key("shown", "stg");
    let output = db.run(&["keys", "show", &key.id, "--json"]);
    assert!(
        !stdout(&output).contains(&key.key),
        "keys show prints the secret"
    );
    let shown = crate::helpers::json_of(&output);
    assert_eq!(listed_fields(&shown), LISTED_FIELDS);
    assert_eq!(shown["id"], key.id.as_str());
    assert_eq!(shown["name"], "shown");
    assert_eq!(shown["environment"], "staging");
    assert_eq!(shown["application"], key.application.as_str());
    assert_eq!(shown["status"], "active");
    let listed = db.json(&["keys", "list", "--json"]);
    assert_eq!(listed[0], shown);
}

#[test]
fn revoke_with_reason_marks_the_key_revoked() {
    let db = Db::new();
    let key = db.create_key("leaky", "prod");
    let other = db.create_key("other", "prod");
    let output = db.run(&[
        "keys",
        "revoke",
        &key.id,
        "--reason",
        "leaked in a public repo",
    ]);
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    assert!(!stdout(&output).contains(&key.key));
    assert_eq!(status_of(&db, &key.id), "revoked");
    assert_eq!(status_of(&db, &other.id), "active");
    let shown = db.show_key(&key.id);
    if let Some(reason) = shown.get("revokedReason") {
        assert_eq!(reason, "leaked in a public repo");
    }
}

#[test]
fn rotate_issues_a_successor_in_the_same_application() {
    let db = Db::new();
    let old = db.create_key("rotated", "dev");
    let value = db.json(&["keys", "rotate", &old.id, "--json"]);
    assert_created_shape(&value, "rotated", "development", "dev");
    let new = Key::from_json(&value);
    assert_eq!(new.application, old.application);
    assert_ne!(new.id, old.id);
    assert_ne!(new.key, old.key);
    let old_shown = db.show_key(&old.id);
    assert_eq!(old_shown["status"], "rotating");
    // The old key's grace period (default one day) ends at its expiresAt.
    assert_timestamp(&old_shown["expiresAt"]);
    assert_eq!(status_of(&db, &new.id), "active");
}

#[test]
fn rotate_with_zero_grace_expires_the_old_key_at_once() {
    let db = Db::new();
    let old = db.create_key("rotated", "prod");
    let output = db.run(&["keys", "rotate", &old.id, "--grace", "0"]);
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    assert_eq!(status_of(&db, &old.id), "expired");
    // Without --json, the new secret is printed once.
    let text = stdout(&output);
    assert!(text.contains("apk_prod_"), "{text}");
}

#[test]
fn rotating_an_already_rotated_key_fails() {
    let db = Db::new();
    let old = db.create_key("rotated", "prod");
    db.json(&["keys", "rotate", &old.id, "--json"]);
    let again = db.run(&["keys", "rotate", &old.id, "--json"]);
    assert_clean_failure(&again);
    let keys = db.json(&["keys", "list", "--json"]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        2,
        "a third key appeared: {keys}"
    );
}

#[test]
fn show_unknown_id_fails_with_one_line_and_no_panic() {
    let db = Db::new();
    db.create_key("k", "dev");
    for args in [
        vec!["keys", "show", "unknown-id"],
        vec!["keys", "show", "unknown-id", "--json"],
        vec!["keys", "revoke", "unknown-id"],
        vec!["keys", "rotate", "unknown-id"],
    ] {
        let mut command = db.cmd(&args);
        command.env("RUST_BACKTRACE", "1");
        let output = crate::helpers::output(command, None);
        assert_clean_failure(&output);
    }
}
