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

/// `signing-keys revoke KID` against a running server: refused for the
/// active key; once the key is rotated out and revoked, the server refuses a
/// token it signed (cached as accepted) within a second, and the JWKS no
/// longer lists it.
async fn revoke_takes_a_signing_key_out_at_once(db: Db) {
    use crate::helpers::{
        assert_clean_failure, assert_resource_ok, get_json, kid, login_ok, time_until_401, Server,
        PASSWORD,
    };
    let key = db.create_key("shop", "prod");
    db.create_user("alice@example.com", PASSWORD);
    let server = Server::start(&db, &[]);
    let tokens = login_ok(&server, &key.key, "alice@example.com", PASSWORD).await;
    let old_kid = kid(&tokens.access);
    assert_resource_ok(&server, &key.key, &tokens.access).await;

    let line = assert_clean_failure(&db.run(&["signing-keys", "revoke", &old_kid]));
    assert!(line.contains("rotate"), "{line}");
    let line = assert_clean_failure(&db.run(&["signing-keys", "revoke", "sk_nope"]));
    assert!(line.contains("no signing key"), "{line}");

    db.ok(&["signing-keys", "rotate"]);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;
    let revoked = db.json(&["signing-keys", "revoke", &old_kid, "--json"]);
    assert_eq!(revoked["kid"], old_kid.as_str());
    assert_eq!(revoked["status"], "retired");
    let took = time_until_401(&server, &key.key, &tokens.access, "invalid_token").await;
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    let jwks = get_json(&server, "/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|jwk| jwk["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&old_kid.as_str()), "{kids:?}");
    // Logins go on with the new key.
    let fresh = login_ok(&server, &key.key, "alice@example.com", PASSWORD).await;
    assert_ne!(kid(&fresh.access), old_kid);
    assert_resource_ok(&server, &key.key, &fresh.access).await;
    let audit = db.json(&["audit", "list", "--limit", "1", "--json"]);
    assert_eq!(audit[0]["action"], "signing_key.revoke");
    assert_eq!(audit[0]["target"], old_kid.as_str());
}

#[tokio::test]
async fn revoke_takes_a_signing_key_out_at_once_on_sqlite() {
    revoke_takes_a_signing_key_out_at_once(Db::new()).await;
}

#[tokio::test]
async fn revoke_takes_a_signing_key_out_at_once_on_postgres() {
    let Some(db) = Db::postgres("signing-keys revoke").await else {
        return;
    };
    revoke_takes_a_signing_key_out_at_once(db).await;
}
