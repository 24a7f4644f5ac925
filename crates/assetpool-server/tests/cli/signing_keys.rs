//! `assetpool signing-keys ...` and `assetpool migrate`.

use crate::helpers::{assert_timestamp, fields, Db};
use serde_json::Value;

fn assert_signing_key_shape(key: &Value) {
    assert_eq!(
        fields(key),
        ["algorithm", "createdAt", "kid", "retiresAt", "status"]
    );
    assert_eq!(key["algorithm"], "EdDSA");
    assert!(!key["kid"].as_str().unwrap().is_empty());
    assert!(
        key["status"] == "active" || key["status"] == "retired",
        "{key}"
    );
    assert_timestamp(&key["createdAt"]);
    if key["status"] == "active" {
        assert!(key["retiresAt"].is_null(), "an active key retires: {key}");
    } else {
        assert_timestamp(&key["retiresAt"]);
    }
}

fn list(db: &Db) -> Vec<Value> {
    let keys = db.json(&["signing-keys", "list", "--json"]);
    let keys = keys.as_array().expect("an array").clone();
    for key in &keys {
        assert_signing_key_shape(key);
    }
    keys
}

fn find<'a>(keys: &'a [Value], kid: &str) -> &'a Value {
    keys.iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} not listed"))
}

#[test]
fn rotate_makes_a_new_active_key_and_retires_the_old_one() {
    let db = Db::new();
    // A fresh database may have no signing key yet; every listed one is well formed.
    list(&db);
    let first = db.json(&["signing-keys", "rotate", "--json"]);
    assert_signing_key_shape(&first);
    assert_eq!(first["status"], "active");
    let second = db.json(&["signing-keys", "rotate", "--json"]);
    assert_signing_key_shape(&second);
    assert_eq!(second["status"], "active");
    assert_ne!(second["kid"], first["kid"]);

    let keys = list(&db);
    let active: Vec<&Value> = keys
        .iter()
        .filter(|key| key["status"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "not exactly one active key: {keys:?}");
    assert_eq!(active[0]["kid"], second["kid"]);
    let old = find(&keys, first["kid"].as_str().unwrap());
    assert_eq!(old["status"], "retired");
    let retires_at =
        chrono::DateTime::parse_from_rfc3339(old["retiresAt"].as_str().unwrap()).unwrap();
    assert!(
        retires_at > chrono::Utc::now(),
        "the old key leaves the JWKS before its tokens expire: {old}"
    );
    let table = db.ok(&["signing-keys", "list"]);
    assert!(table.contains(second["kid"].as_str().unwrap()));
}

#[test]
fn migrate_succeeds_on_a_fresh_database() {
    let db = Db::new();
    let output = db.run(&["migrate"]);
    assert!(
        output.status.success(),
        "migrate failed: {}",
        crate::helpers::stderr(&output)
    );
    assert!(db.path().join("test.db").exists(), "no database file");
    // Again, on the migrated database.
    assert!(db.run(&["migrate"]).status.success());
    // And the database is usable.
    db.create_key("after-migrate", "dev");
}

#[test]
fn default_database_folder_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let mut migrate = crate::helpers::command(dir.path());
    migrate.arg("migrate");
    let output = crate::helpers::output(migrate, None);
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    assert!(dir
        .path()
        .join("assetpool-data")
        .join("assetpool.db")
        .exists());
}
