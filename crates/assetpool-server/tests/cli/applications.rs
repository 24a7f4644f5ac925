//! `assetpool applications ...` through the real binary, on SQLite and
//! PostgreSQL: every command with `--json` and in columns, every refusal as
//! one line, the audit log, export and import, and a member removed (or an
//! application switched to members-only) refused on two servers within a
//! second.

use crate::helpers::{
    assert_clean_failure, assert_timestamp, fields, json_of, login, login_ok, stdout,
    time_until_401, Db, Server, PASSWORD,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

crate::on_both_backends! {
    applications_are_created_listed_shown_and_updated => create_list_show_update;
    members_are_added_changed_and_removed => members;
    unknown_applications_users_and_members_fail_cleanly => refusals;
    changes_are_audited_and_exported => audited_and_exported;
    members_only_logins_and_sessions_on_two_servers => two_servers;
}

fn create(db: &Db, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["applications", "create", "--name", name, "--json"];
    args.extend_from_slice(extra);
    db.json(&args)
}

fn show(db: &Db, id: &str) -> Value {
    db.json(&["applications", "show", id, "--json"])
}

fn id_of(application: &Value) -> String {
    application["id"].as_str().expect("an id").to_owned()
}

async fn create_list_show_update(db: Db) {
    let shop = create(&db, "shop", &[]);
    assert_eq!(
        fields(&shop),
        ["createdAt", "id", "members", "membersOnly", "name"]
    );
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["membersOnly"], false);
    assert_eq!(shop["members"], json!([]));
    assert_timestamp(&shop["createdAt"]);
    let id = id_of(&shop);
    assert!(id.starts_with("app_"), "{id}");
    let vault = create(&db, "vault", &["--members-only", "true"]);
    assert_eq!(vault["membersOnly"], true);
    assert_eq!(show(&db, &id), shop);

    // `keys create --application` adds a key to it; without it, a key gets
    // an application of its own, listed too.
    let key = db.json(&[
        "keys",
        "create",
        "--name",
        "shop key",
        "--env",
        "prod",
        "--application",
        &id,
        "--json",
    ]);
    assert_eq!(key["application"], id.as_str());
    let own = db.create_key("own", "prod");
    let listed = db.json(&["applications", "list", "--json"]);
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 3);
    assert!(listed.contains(&shop) && listed.contains(&vault));
    assert!(listed
        .iter()
        .any(|item| item["id"] == own.application.as_str()));

    let renamed = db.json(&["applications", "update", &id, "--name", "shop v2", "--json"]);
    assert_eq!(
        (renamed["name"].as_str(), renamed["membersOnly"].as_bool()),
        (Some("shop v2"), Some(false))
    );
    let restricted = db.json(&[
        "applications",
        "update",
        &id,
        "--members-only",
        "true",
        "--json",
    ]);
    assert_eq!(
        (
            restricted["name"].as_str(),
            restricted["membersOnly"].as_bool()
        ),
        (Some("shop v2"), Some(true))
    );
    assert_eq!(show(&db, &id), restricted);

    human_output(&db, &id);
}

/// `list`, `show` and `update` without `--json`: aligned columns, one
/// field per line. `id` is a members-only application named `shop v2`.
fn human_output(db: &Db, id: &str) {
    let table = db.ok(&["applications", "list"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("NAME") && header.contains("MEMBERS ONLY"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|line| line.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed: {table}"));
    assert_eq!(
        row.find("shop v2"),
        header.find("NAME"),
        "columns aligned: {table}"
    );
    let shown = db.ok(&["applications", "show", id]);
    assert!(shown.contains(&format!("id:            {id}")), "{shown}");
    assert!(shown.contains("members only:  yes"), "{shown}");
    let updated = db.ok(&["applications", "update", id, "--members-only", "false"]);
    assert!(
        updated.starts_with(&format!("Updated application {id}.")),
        "{updated}"
    );
    assert!(updated.contains("members only:  no"), "{updated}");
}

async fn members(db: Db) {
    db.create_user("alice@example.com", PASSWORD);
    db.create_user("bob@example.com", PASSWORD);
    let id = id_of(&create(&db, "shop", &[]));
    let added = db.json(&[
        "applications",
        "add-member",
        &id,
        "Bob@Example.com",
        "--json",
    ]);
    assert_eq!(
        added["members"],
        json!([{"email": "bob@example.com", "role": "member"}])
    );
    db.json(&[
        "applications",
        "add-member",
        &id,
        "alice@example.com",
        "--role",
        "member",
        "--json",
    ]);
    let promoted = db.json(&[
        "applications",
        "add-member",
        &id,
        "alice@example.com",
        "--role",
        "owner",
        "--json",
    ]);
    assert_eq!(
        promoted["members"],
        json!([
            {"email": "alice@example.com", "role": "owner"},
            {"email": "bob@example.com", "role": "member"}
        ])
    );
    let table = db.ok(&["applications", "show", &id]);
    assert!(table.contains("members:       2"), "{table}");
    let alice = table
        .lines()
        .find(|line| line.starts_with("alice@example.com"))
        .unwrap_or_else(|| panic!("no alice: {table}"));
    let header = table
        .lines()
        .find(|line| line.starts_with("EMAIL"))
        .unwrap_or_else(|| panic!("no member header: {table}"));
    assert_eq!(alice.find("owner"), header.find("ROLE"), "{table}");

    let removed = db.ok(&["applications", "remove-member", &id, "bob@example.com"]);
    assert!(
        removed.starts_with(&format!(
            "bob@example.com is no longer a member of application {id}."
        )),
        "{removed}"
    );
    assert_eq!(
        show(&db, &id)["members"],
        json!([{"email": "alice@example.com", "role": "owner"}])
    );
    let listed = db.json(&["applications", "list", "--json"]);
    assert_eq!(listed[0]["members"].as_array().map(Vec::len), Some(1));
}

/// Commands that must fail (`{id}` is an existing application where Alice
/// is not a member), and what their one line of error says.
const REFUSED: &[(&[&str], &str)] = &[
    (&["applications", "show", "app_unknown"], "no application"),
    (
        &["applications", "update", "app_unknown", "--name", "x"],
        "no application",
    ),
    (
        &[
            "applications",
            "add-member",
            "app_unknown",
            "alice@example.com",
        ],
        "no application",
    ),
    (
        &[
            "applications",
            "remove-member",
            "app_unknown",
            "alice@example.com",
        ],
        "no application",
    ),
    (
        &["applications", "add-member", "{id}", "nobody@example.com"],
        "no user",
    ),
    (
        &[
            "applications",
            "remove-member",
            "{id}",
            "nobody@example.com",
        ],
        "no user",
    ),
    (
        &["applications", "remove-member", "{id}", "alice@example.com"],
        "not a member",
    ),
    (
        &[
            "applications",
            "add-member",
            "{id}",
            "alice@example.com",
            "--role",
            "boss",
        ],
        "owner or member",
    ),
    (&["applications", "update", "{id}"], "nothing to change"),
    (
        &["applications", "update", "{id}", "--members-only", "maybe"],
        "--members-only",
    ),
    (&["applications", "create", "--name", " "], "names"),
    (&["applications", "create"], "--name"),
    (
        &[
            "keys",
            "create",
            "--name",
            "k",
            "--env",
            "prod",
            "--application",
            "app_unknown",
        ],
        "no application",
    ),
];

async fn refusals(db: Db) {
    db.create_user("alice@example.com", PASSWORD);
    let id = id_of(&create(&db, "shop", &[]));
    for (args, expected) in REFUSED {
        let args: Vec<&str> = args
            .iter()
            .map(|arg| if *arg == "{id}" { id.as_str() } else { arg })
            .collect();
        let line = assert_clean_failure(&db.run(&args));
        assert!(line.contains(expected), "{args:?}: {line}");
        let mut json_args = args.clone();
        json_args.push("--json");
        assert_clean_failure(&db.run(&json_args));
    }
    // Nothing changed.
    assert_eq!(show(&db, &id)["members"], json!([]));
    assert_eq!(show(&db, &id)["name"], "shop");
    let listed = db.json(&["applications", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

async fn audited_and_exported(db: Db) {
    db.create_user("alice@example.com", PASSWORD);
    db.create_user("bob@example.com", PASSWORD);
    let id = id_of(&create(&db, "shop", &["--members-only", "yes"]));
    let key = db.json(&[
        "keys",
        "create",
        "--name",
        "shop key",
        "--env",
        "prod",
        "--application",
        &id,
        "--json",
    ]);
    db.ok(&[
        "applications",
        "add-member",
        &id,
        "alice@example.com",
        "--role",
        "owner",
    ]);
    db.ok(&["applications", "add-member", &id, "bob@example.com"]);
    db.ok(&["applications", "remove-member", &id, "bob@example.com"]);
    db.ok(&["applications", "update", &id, "--name", "shop v2"]);
    assert_clean_failure(&db.run(&["applications", "show", "app_unknown"]));
    assert_clean_failure(&db.run(&["applications", "add-member", &id, "nobody@example.com"]));

    let entries = db.json(&["audit", "list", "--json"]);
    let entries = entries.as_array().expect("an array");
    let of = |action: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|entry| entry["action"] == action && entry["target"] == id.as_str())
            .collect()
    };
    assert_eq!(of("application.create").len(), 1);
    assert_eq!(of("application.add_member").len(), 3, "{entries:?}");
    assert_eq!(of("application.remove_member").len(), 1);
    assert_eq!(of("application.update").len(), 1);
    let failed = of("application.add_member")
        .into_iter()
        .find(|entry| entry["outcome"] == "failure")
        .expect("the failed add-member is audited");
    assert_eq!(failed["error"], "not_found");
    let text = db.ok(&["audit", "list"]);
    assert!(text.contains("application.remove_member"), "{text}");

    // Export and import into a fresh database of the same backend.
    let shown = show(&db, &id);
    let exported = db.run(&["export"]);
    assert!(exported.status.success());
    let export = stdout(&exported);
    assert!(
        export.contains("\"type\":\"application_member\""),
        "{export}"
    );
    assert!(export.contains("\"members_only\":true"), "{export}");
    let target = if db.url.starts_with("sqlite:") {
        Db::new()
    } else {
        Db::postgres("applications_import_target")
            .await
            .expect("PostgreSQL answered a moment ago")
    };
    let imported = json_of(&target.run_stdin(&["import", "--json"], &export));
    assert_eq!(imported["applicationMembers"], 1, "{imported}");
    assert_eq!(show(&target, &id), shown);
    assert_eq!(
        shown["members"],
        json!([{"email": "alice@example.com", "role": "owner"}])
    );
    // The members-only rule moved with it.
    let server = Server::start(&target, &[]);
    let key = key["key"].as_str().expect("the secret");
    login_ok(&server, key, "alice@example.com", PASSWORD).await;
    let (status, body) = login(&server, key, "bob@example.com", PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
}

/// Two servers on one database: an outsider is refused like a wrong
/// password on both; removing a member, or switching members-only on, ends
/// the sessions concerned on both within a second (measured from before the
/// command runs); their refresh tokens are refused.
async fn two_servers(db: Db) {
    // The database is made (and migrated) by the command line first: two
    // servers migrating a fresh SQLite file at once would race.
    for email in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        db.create_user(email, PASSWORD);
    }
    let nodes = std::thread::scope(|scope| {
        let starting = [(); 2].map(|()| scope.spawn(|| Server::start(&db, &[])));
        starting.map(|handle| handle.join().expect("a server starts"))
    });
    let id = id_of(&create(&db, "shop", &[]));
    let key = db.json(&[
        "keys",
        "create",
        "--name",
        "shop",
        "--env",
        "prod",
        "--application",
        &id,
        "--json",
    ]);
    let key = key["key"].as_str().expect("the secret").to_owned();
    db.ok(&["applications", "add-member", &id, "alice@example.com"]);
    db.ok(&[
        "applications",
        "add-member",
        &id,
        "bob@example.com",
        "--role",
        "owner",
    ]);
    let alice = login_ok(&nodes[0], &key, "alice@example.com", PASSWORD).await;
    let bob = login_ok(&nodes[1], &key, "bob@example.com", PASSWORD).await;
    let carol = login_ok(&nodes[0], &key, "carol@example.com", PASSWORD).await;

    // Switching members-only on ends Carol's session, on both servers.
    let since = Instant::now();
    db.ok(&["applications", "update", &id, "--members-only", "true"]);
    for node in &nodes {
        time_until_401(node, &key, &carol.access, "token_revoked").await;
    }
    let took = since.elapsed();
    eprintln!("members-only refused on both servers after {took:?}");
    assert!(took < Duration::from_secs(1), "members-only took {took:?}");
    let wrong = login(
        &nodes[1],
        &key,
        "alice@example.com",
        "not the password, but long",
    )
    .await;
    for node in &nodes {
        let outsider = login(node, &key, "carol@example.com", PASSWORD).await;
        assert_eq!(outsider, wrong);
        assert_eq!(refresh(node, &key, &carol.refresh).await, 401);
    }

    // Removing Alice ends her session on both; Bob's goes on.
    let since = Instant::now();
    db.ok(&["applications", "remove-member", &id, "alice@example.com"]);
    for node in &nodes {
        time_until_401(node, &key, &alice.access, "token_revoked").await;
    }
    let took = since.elapsed();
    eprintln!("remove-member refused on both servers after {took:?}");
    assert!(took < Duration::from_secs(1), "remove-member took {took:?}");
    for node in &nodes {
        assert_eq!(refresh(node, &key, &alice.refresh).await, 401);
        let (status, _) = crate::helpers::resource(node, &key, &bob.access).await;
        assert_eq!(status, 200);
        node.assert_no_secrets(&[&key, PASSWORD, &alice.access, &alice.refresh]);
    }
}

/// POST /api/authentication/refresh: the status.
async fn refresh(server: &Server, key: &str, refresh_token: &str) -> u16 {
    crate::helpers::client()
        .post(server.at("/api/authentication/refresh"))
        .header("x-api-key", key)
        .json(&json!({ "refreshToken": refresh_token }))
        .send()
        .await
        .expect("refresh request")
        .status()
        .as_u16()
}
