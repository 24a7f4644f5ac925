//! Reads over `--server`: every list and show prints as on the database.

use super::{id, Remote};
use crate::helpers::{json_of, resource, stderr, Db, PASSWORD};
use serde_json::Value;
use std::time::{Duration, Instant};

crate::on_both_backends! {
    reads_print_the_same_over_the_admin_api => reads;
    lists_over_the_admin_api_read_every_page => every_page;
}

/// Applications stored at once (more than one page of the admin API, 500).
const MANY: usize = 620;

/// A list longer than a page of the admin API prints whole.
async fn every_page(db: Db) {
    let remote = Remote::start(db);
    remote
        .db
        .sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MANY}) \
             INSERT INTO applications (id, name, created_at) \
             SELECT 'app_bulk' || i, 'bulk ' || i, 1700000000000 + i FROM n"
        ))
        .await;
    let output = remote.same(&["applications", "list", "--json"]);
    let listed = json_of(&output);
    assert_eq!(
        listed.as_array().unwrap().len(),
        MANY + 1,
        "the admin key's own and the bulk"
    );
    remote.same(&["applications", "list"]);
}

async fn reads(db: Db) {
    let remote = Remote::start(db);
    let (shop_id, application_id) = seed(&remote).await;
    compare(&remote, &shop_id, &application_id);
}

/// Keys, users, an application, a second signing key, an alert and failed
/// logins, made on the database: the ids of a key and the application.
async fn seed(remote: &Remote) -> (String, String) {
    let db = &remote.db;
    let shop = db.json(&[
        "keys",
        "create",
        "--env",
        "prod",
        "--name",
        "web shop",
        "--rate",
        "10/s",
        "--quota",
        "1000/day",
        "--scope",
        "orders:read",
        "--metadata",
        r#"{"team":"web"}"#,
        "--json",
    ]);
    db.json(&[
        "keys", "create", "--name", "staging", "--env", "stg", "--json",
    ]);
    let revoked = db.json(&["keys", "create", "--name", "old", "--env", "prod", "--json"]);
    db.ok(&[
        "keys",
        "revoke",
        id(&revoked).as_str(),
        "--reason",
        "replaced",
    ]);
    let application = db.json(&["applications", "create", "--name", "vault", "--json"]);
    let ann = db.run_stdin(
        &[
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--scope",
            "orders:read",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ann.status.success(), "{}", stderr(&ann));
    db.ok(&[
        "applications",
        "add-member",
        id(&application).as_str(),
        "ann@example.com",
    ]);
    db.ok(&["signing-keys", "rotate"]);
    raise_alert(remote, &revoked).await;
    let (status, _) = crate::helpers::login(
        &remote.server,
        &remote.key,
        "ann@example.com",
        "wrong password!",
    )
    .await;
    assert_eq!(status, 401);
    remote.settle_last_use().await;

    (id(&shop), id(&application))
}

/// Every read command in columns and in JSON: the same on both sides.
fn compare(remote: &Remote, shop_id: &str, application_id: &str) {
    let db = &remote.db;
    for args in [
        vec!["keys", "list"],
        vec!["keys", "list", "--env", "prod"],
        vec!["keys", "show", shop_id],
        vec!["keys", "show", remote.key_id.as_str()],
        vec!["users", "list"],
        vec!["applications", "list"],
        vec!["applications", "show", application_id],
        vec!["alerts", "list"],
        vec!["alerts", "list", "--since", "1h", "--limit", "1"],
        vec!["audit", "list"],
        vec!["audit", "list", "--limit", "3"],
        vec!["signing-keys", "list"],
        vec!["users", "attempts"],
        vec!["users", "attempts", "ann@example.com"],
        vec!["audit", "verify"],
    ] {
        for json in [false, true] {
            let mut args = args.clone();
            if json {
                args.push("--json");
            }
            let output = remote.same(&args);
            assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        }
    }
    // `keys usage` counts up to now: the same apart from its start time.
    let usage = ["keys", "usage", shop_id, "--since", "2h", "--json"];
    let mut direct = json_of(&db.run(&usage));
    let mut over_http = json_of(&remote.remote(&usage));
    for usage in [&mut direct, &mut over_http] {
        usage.as_object_mut().unwrap().remove("since");
    }
    assert_eq!(direct, over_http);
}

/// Presents the revoked key `revoked` to the server until its alert exists.
async fn raise_alert(remote: &Remote, revoked: &Value) {
    let key = revoked["key"].as_str().unwrap();
    let (status, _) = resource(&remote.server, key, "no.token.here").await;
    assert_eq!(status, 401);
    let start = Instant::now();
    while remote.db.json(&["alerts", "list", "--json"]) == serde_json::json!([]) {
        assert!(start.elapsed() < Duration::from_secs(10), "no alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
