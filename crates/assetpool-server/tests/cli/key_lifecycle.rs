//! `assetpool keys disable|enable`, and the lifecycle options of `keys
//! create|update` (`--expires-in`, `--metadata`, `--owner`, `--allow-cidr`,
//! `--allow-cidrs none`), through the real binary: JSON shapes, one-line
//! errors, the audit log, and two running servers learning each change
//! within a second.

use crate::helpers::{
    assert_clean_failure, assert_resource_401, assert_resource_ok, json_of, login, login_ok,
    resource, stdout, time_until_401, Db, Key, Server, PASSWORD,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";

/// Polls GET /v1/resource on `server` until it answers 200; returns how long it took.
async fn time_until_ok(server: &Server, key: &str, token: &str) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = resource(server, key, token).await;
        if status == 200 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {status} {body} 5 s later (expected 200)"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[test]
fn create_and_update_set_and_clear_metadata_owner_and_allow_list() {
    let db = Db::new();
    let created = db.json(&[
        "keys",
        "create",
        "--name",
        "billing",
        "--env",
        "prod",
        "--metadata",
        r#"{"team":"billing","tier":2}"#,
        "--owner",
        "Owner@Example.com",
        "--allow-cidr",
        "203.0.113.7/24",
        "--allow-cidr",
        "2001:db8::1",
        "--json",
    ]);
    // The creation answer keeps its contract shape; the key shows the rest.
    assert!(created.get("metadata").is_none(), "{created}");
    let id = created["id"].as_str().unwrap();
    let shown = db.show_key(id);
    assert_eq!(shown["metadata"], json!({"team": "billing", "tier": 2}));
    assert_eq!(shown["owner"], "owner@example.com");
    assert_eq!(
        shown["allowedCidrs"],
        json!(["203.0.113.0/24", "2001:db8::1/128"])
    );
    assert_eq!(shown["status"], "active");

    let updated = db.json(&[
        "keys",
        "update",
        id,
        "--allow-cidr",
        "198.51.100.0/24",
        "--metadata",
        r#"{"team":"ops"}"#,
        "--owner",
        "none",
        "--expires-in",
        "7d",
        "--json",
    ]);
    assert_eq!(updated["allowedCidrs"], json!(["198.51.100.0/24"]));
    assert_eq!(updated["metadata"], json!({"team": "ops"}));
    assert!(updated["owner"].is_null());
    assert!(updated["expiresAt"].is_string(), "{updated}");
    let cleared = db.json(&[
        "keys",
        "update",
        id,
        "--allow-cidrs",
        "none",
        "--metadata",
        "none",
        "--expires-in",
        "none",
        "--json",
    ]);
    for field in ["allowedCidrs", "metadata", "owner", "expiresAt"] {
        assert!(cleared[field].is_null(), "{field} in {cleared}");
    }
    // The human form names what is set.
    let text = db.ok(&["keys", "update", id, "--owner", "ops@example.com"]);
    assert!(text.contains("owner:        ops@example.com"), "{text}");
    let audit = db.json(&["audit", "list", "--json"]);
    let updates = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "key.update" && entry["target"] == id)
        .count();
    assert_eq!(updates, 3);
}

#[test]
fn a_successor_keeps_the_owner_metadata_and_allow_list() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    db.ok(&[
        "keys",
        "update",
        &key.id,
        "--owner",
        "ops@example.com",
        "--allow-cidr",
        "10.0.0.0/8",
        "--metadata",
        r#"{"team":"ops"}"#,
    ]);
    let successor = db.json(&["keys", "rotate", &key.id, "--grace", "60", "--json"]);
    let successor = db.show_key(successor["id"].as_str().unwrap());
    assert_eq!(successor["owner"], "ops@example.com");
    assert_eq!(successor["metadata"], json!({"team": "ops"}));
    assert_eq!(successor["allowedCidrs"], json!(["10.0.0.0/8"]));
}

#[test]
fn bad_lifecycle_options_fail_with_one_line() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    let too_big = format!(r#"{{"notes":"{}"}}"#, "x".repeat(4100));
    for args in [
        vec!["--metadata", "[1,2]"],
        vec!["--metadata", "{not json"],
        vec!["--metadata", too_big.as_str()],
        vec!["--owner", "not-an-email"],
        vec!["--allow-cidr", "10.0.0.0/33"],
        vec!["--allow-cidr", "example.com"],
        vec!["--allow-cidrs", "all"],
        vec!["--allow-cidr", "10.0.0.0/8", "--allow-cidrs", "none"],
        vec!["--expires-in", "0"],
        vec!["--expires-in", "soon"],
    ] {
        let mut command = vec!["keys", "update", key.id.as_str()];
        command.extend(&args);
        let line = assert_clean_failure(&db.run(&command));
        assert!(!line.contains("example.com"), "{line}");
    }
    let line = assert_clean_failure(&db.run(&["keys", "update", &key.id]));
    assert!(line.contains("nothing to change"), "{line}");
    let line = assert_clean_failure(&db.run(&[
        "keys",
        "create",
        "--name",
        "x",
        "--env",
        "prod",
        "--metadata",
        "7",
    ]));
    assert!(line.contains("JSON object"), "{line}");
    for command in ["disable", "enable"] {
        let line = assert_clean_failure(&db.run(&["keys", command, "key_unknown"]));
        assert!(line.contains("no API key"), "{line}");
    }
    // Nothing changed.
    let shown = db.show_key(&key.id);
    assert!(shown["metadata"].is_null() && shown["allowedCidrs"].is_null());
}

#[test]
fn disable_enable_rotate_and_revoke() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    let disabled = db.json(&["keys", "disable", &key.id, "--json"]);
    assert_eq!(disabled["status"], "disabled");
    assert!(disabled["disabledAt"].is_string());
    let listed = db.json(&["keys", "list", "--json"]);
    assert_eq!(listed[0]["status"], "disabled");
    let line = assert_clean_failure(&db.run(&["keys", "rotate", &key.id]));
    assert!(line.contains("disabled"), "{line}");
    let text = db.ok(&["keys", "enable", &key.id]);
    assert!(text.contains("Enabled API key"), "{text}");
    assert_eq!(db.show_key(&key.id)["status"], "active");
    db.ok(&["keys", "disable", &key.id]);
    let revoked = db.json(&["keys", "revoke", &key.id, "--json"]);
    assert_eq!(revoked["status"], "revoked");
    let line = assert_clean_failure(&db.run(&["keys", "enable", &key.id]));
    assert!(line.contains("revoked"), "{line}");
    let audit = db.json(&["audit", "list", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["target"] == key.id.as_str())
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    for action in ["key.disable", "key.enable", "key.revoke"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
}

/// Two servers on `db`: `keys disable` (the command line, on the database)
/// reaches both within a second, for the key and for a token of its session
/// presented with another key of the application; `keys enable` brings both
/// back; an allow-list set with `keys update` is enforced at once too.
async fn disable_enable_and_allow_lists_reach_running_servers(db: Db) {
    let key = db.create_key("shop", "prod");
    let sibling = Key::from_json(&db.json(&[
        "keys",
        "create",
        "--name",
        "sibling",
        "--env",
        "prod",
        "--application",
        &key.application,
        "--json",
    ]));
    db.create_user(EMAIL, PASSWORD);
    let servers = [Server::start(&db, &[]), Server::start(&db, &[])];
    let tokens = login_ok(&servers[0], &key.key, EMAIL, PASSWORD).await;
    for server in &servers {
        assert_resource_ok(server, &sibling.key, &tokens.access).await;
    }
    db.ok(&["keys", "disable", &key.id]);
    for server in &servers {
        let took = time_until_401(server, &sibling.key, &tokens.access, "token_revoked").await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert_resource_401(server, &key.key, &tokens.access, "api_key_disabled").await;
        let (status, body) = login(server, &key.key, EMAIL, PASSWORD).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("api_key_disabled"))
        );
    }
    db.ok(&["keys", "enable", &key.id]);
    for server in &servers {
        let took = time_until_ok(server, &sibling.key, &tokens.access).await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert_resource_ok(server, &key.key, &tokens.access).await;
    }
    // The servers' clients come from 127.0.0.1: a list without it refuses them.
    db.ok(&["keys", "update", &key.id, "--allow-cidr", "203.0.113.0/24"]);
    for server in &servers {
        let started = Instant::now();
        loop {
            let (status, body) = resource(server, &key.key, &tokens.access).await;
            if status == 403 {
                assert_eq!(body["error"], "address_not_allowed");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "still {status}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let (status, body) = login(&servers[1], &key.key, EMAIL, "a wrong password!").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("address_not_allowed"))
    );
    db.ok(&["keys", "update", &key.id, "--allow-cidr", "127.0.0.1"]);
    for server in &servers {
        let took = time_until_ok(server, &key.key, &tokens.access).await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    for server in &servers {
        server.assert_no_secrets(&[&key.key, &sibling.key, &tokens.access, &tokens.refresh]);
    }
}

#[tokio::test]
async fn disable_enable_and_allow_lists_reach_running_servers_on_sqlite() {
    disable_enable_and_allow_lists_reach_running_servers(Db::new()).await;
}

#[tokio::test]
async fn disable_enable_and_allow_lists_reach_running_servers_on_postgres() {
    let Some(db) = Db::postgres("keys disable").await else {
        return;
    };
    disable_enable_and_allow_lists_reach_running_servers(db).await;
}

/// `export` then `import` into a fresh database keeps a key's disabled
/// state, expiry, metadata, owner and allow-list, and the moved database
/// refuses the key as the old one did.
#[test]
fn export_and_import_keep_the_lifecycle_fields() {
    let source = Db::new();
    let key = source.create_key("shop", "prod");
    source.ok(&[
        "keys",
        "update",
        &key.id,
        "--metadata",
        r#"{"team":"ops"}"#,
        "--owner",
        "ops@example.com",
        "--allow-cidr",
        "203.0.113.0/24",
        "--expires-in",
        "30d",
    ]);
    source.ok(&["keys", "disable", &key.id]);
    let before = source.show_key(&key.id);
    let export = stdout(&source.run(&["export"]));
    assert!(
        export.contains(r#""allowed_cidrs":["203.0.113.0/24"]"#),
        "{export}"
    );
    let target = Db::new();
    let imported = target.run_stdin(&["import", "--json"], &export);
    json_of(&imported);
    let after = target.show_key(&key.id);
    for field in [
        "status",
        "disabledAt",
        "expiresAt",
        "metadata",
        "owner",
        "allowedCidrs",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(after["status"], Value::from("disabled"));
}

/// A disabled key reported as leaked is live (an enable would bring it
/// back): `keys check-leak --revoke` revokes it.
#[test]
fn a_disabled_key_that_leaked_is_live_and_revoked() {
    let db = Db::new();
    let key = db.create_key("billing", "prod");
    db.ok(&["keys", "disable", &key.id]);
    let output = db.run_stdin(
        &["keys", "check-leak", "--revoke"],
        &format!("{}\n", key.key),
    );
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains(&format!("line 1: live key {}", key.id)),
        "{text}"
    );
    assert!(!text.contains(&key.key));
    assert_eq!(db.show_key(&key.id)["status"], "revoked");
}
