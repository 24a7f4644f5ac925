//! Changes over `--server`: each command run on one object on the database
//! and on a twin over HTTP prints the same (ids and times masked), and the
//! audit log names the admin for the changes made over HTTP.

use super::assert_same_outputs;
use super::{id, mask, Remote, ADMIN};
use crate::helpers::{assert_clean_failure, json_of, login, stderr, stdout, Db, PASSWORD};

crate::on_both_backends! {
    key_changes_print_the_same_over_the_admin_api => key_changes;
    user_and_application_changes_print_the_same_over_the_admin_api => user_changes;
    signing_key_changes_print_the_same_over_the_admin_api => signing_key_changes;
    leak_checks_print_the_same_over_the_admin_api => leak_checks;
}

/// Every option of `keys create`.
const CREATE_KEY: [&str; 24] = [
    "keys",
    "create",
    "--name",
    "twin",
    "--env",
    "prod",
    "--scope",
    "a",
    "--rate",
    "5/s",
    "--burst",
    "9",
    "--quota",
    "10/hour",
    "--allow-cidr",
    "10.0.0.0/8",
    "--owner",
    "o@example.com",
    "--metadata",
    r#"{"n":1}"#,
    "--expires-in",
    "3600",
    "--application",
    "APP",
];

/// Key changes, `ID` standing for the key.
const KEY_CHANGES: [&[&str]; 11] = [
    &[
        "keys", "update", "ID", "--name", "renamed", "--rate", "7/min", "--quota", "none",
    ],
    &[
        "keys", "update", "ID", "--burst", "3", "--scopes", "none", "--json",
    ],
    &[
        "keys",
        "update",
        "ID",
        "--expires-in",
        "7d",
        "--metadata",
        "none",
        "--owner",
        "none",
    ],
    &[
        "keys",
        "update",
        "ID",
        "--allow-cidr",
        "::1",
        "--allow-cidr",
        "192.0.2.0/24",
    ],
    &["keys", "update", "ID", "--allow-cidrs", "none", "--json"],
    &["keys", "disable", "ID"],
    &["keys", "enable", "ID", "--json"],
    &[
        "keys", "usage", "ID", "--since", "30m", "--bucket", "minute",
    ],
    &["keys", "rotate", "ID", "--grace", "60"],
    &["keys", "revoke", "ID", "--reason", "done", "--json"],
    &["keys", "rotate", "ID", "--json"],
];

/// User and application changes, `EMAIL` and `APP` standing for them.
const USER_CHANGES: [&[&str]; 10] = [
    &[
        "applications",
        "update",
        "APP",
        "--name",
        "gamma",
        "--members-only",
        "false",
    ],
    &[
        "applications",
        "add-member",
        "APP",
        "EMAIL",
        "--role",
        "owner",
        "--json",
    ],
    &["applications", "add-member", "APP", "EMAIL"],
    &["applications", "remove-member", "APP", "EMAIL"],
    &["applications", "show", "APP", "--json"],
    &["users", "update", "EMAIL", "--scope", "b", "--json"],
    &["users", "disable", "EMAIL"],
    &["users", "enable", "EMAIL", "--json"],
    &["users", "unlock", "EMAIL"],
    &["users", "unlock", "EMAIL", "--json"],
];

/// Creates an application on each side alike (`applications create` in
/// columns, then in JSON): the two ids.
fn twin_applications(remote: &Remote) -> (String, String) {
    let create = [
        "applications",
        "create",
        "--name",
        "twin",
        "--members-only",
        "true",
    ];
    remote.same(&create);
    let json_create = [&create[..], &["--json"]].concat();
    let direct = json_of(&remote.db.run(&json_create));
    let over_http = json_of(&remote.remote(&json_create));
    assert_eq!(mask(&direct.to_string()), mask(&over_http.to_string()));
    (id(&direct), id(&over_http))
}

async fn key_changes(db: Db) {
    let remote = Remote::start(db);
    let (alpha, beta) = twin_applications(&remote);
    remote.same_filled(&CREATE_KEY, &[("APP", &alpha)], &[("APP", &beta)]);
    let json_create = [&CREATE_KEY[..], &["--json"]].concat();
    let fill = |application: &str| -> Vec<String> {
        json_create
            .iter()
            .map(|arg| if *arg == "APP" { application } else { arg })
            .map(str::to_owned)
            .collect()
    };
    let (direct, over_http) = (fill(&alpha), fill(&beta));
    let direct = json_of(
        &remote
            .db
            .run(&direct.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let over_http =
        json_of(&remote.remote(&over_http.iter().map(String::as_str).collect::<Vec<_>>()));
    let back = over_http.to_string().replace(&beta, &alpha);
    assert_eq!(mask(&direct.to_string()), mask(&back));
    let (one, two) = (id(&direct), id(&over_http));
    for change in KEY_CHANGES {
        remote.same_filled(change, &[("ID", &one)], &[("ID", &two)]);
    }
    let show = |id: &str| mask(&stdout(&remote.db.run(&["keys", "show", id, "--json"])));
    assert_eq!(show(&one), show(&two).replace(&beta, &alpha));
}

async fn user_changes(db: Db) {
    let remote = Remote::start(db);
    let (alpha, beta) = twin_applications(&remote);
    let (direct_email, remote_email) = ("d@example.com", "r@example.com");
    let create = |email: &'static str| {
        [
            "users",
            "create",
            "--email",
            email,
            "--scope",
            "a",
            "--json",
            "--password-stdin",
        ]
    };
    let direct = remote
        .db
        .run_stdin(&create(direct_email), &format!("{PASSWORD}\n"));
    // Over HTTP, stdin is the new user's password; the admin's is in the environment.
    let over_http = remote.remote_stdin(&create(remote_email), Some(&format!("{PASSWORD} new\n")));
    let (direct, over_http) = (json_of(&direct), json_of(&over_http));
    assert_eq!(over_http["email"], remote_email);
    assert_eq!(direct["scopes"], over_http["scopes"]);
    let new_password = format!("{PASSWORD} new");
    let (status, body) = login(&remote.server, &remote.key, remote_email, &new_password).await;
    assert_eq!(status, 200, "{body}");
    for change in USER_CHANGES {
        remote.same_filled(
            change,
            &[("APP", &alpha), ("EMAIL", direct_email)],
            &[("APP", &beta), ("EMAIL", remote_email)],
        );
    }
    let set_password = [
        "users",
        "set-password",
        remote_email,
        "--password-stdin",
        "--json",
    ];
    let changed = remote.remote_stdin(&set_password, Some("another long passphrase 9\n"));
    assert_eq!(
        json_of(&changed)["result"],
        "password changed, sessions revoked"
    );
    let passphrase = "another long passphrase 9";
    let (status, _) = login(&remote.server, &remote.key, remote_email, passphrase).await;
    assert_eq!(status, 200);

    // The audit log names the admin for the changes made over HTTP, the
    // operating-system user for those made on the database.
    let audit = remote
        .db
        .json(&["audit", "list", "--limit", "200", "--json"]);
    let actor_of = |target: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["target"] == target)
            .map(|entry| entry["actor"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no entry on {target}: {audit}"))
    };
    assert_eq!(actor_of(remote_email), format!("admin:{ADMIN}"));
    assert!(actor_of(direct_email).starts_with("cli:"), "{audit}");
    assert_eq!(actor_of(&beta), format!("admin:{ADMIN}"));
}

async fn signing_key_changes(db: Db) {
    let remote = Remote::start(db);
    remote.same(&["signing-keys", "rotate"]);
    remote.same(&["signing-keys", "rotate", "--json"]);
    // Two retired keys: one revoked on the database, the other over HTTP.
    // The two oldest: the server may learn of the last rotation on the
    // database up to a second late and still sign with the key before it.
    let signing_keys = remote.db.json(&["signing-keys", "list", "--json"]);
    let mut retired: Vec<(&str, &str)> = signing_keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["status"] == "retired")
        .map(|key| {
            (
                key["createdAt"].as_str().unwrap(),
                key["kid"].as_str().unwrap(),
            )
        })
        .collect();
    retired.sort_unstable();
    let retired: Vec<&str> = retired.into_iter().map(|(_, kid)| kid).collect();
    assert!(retired.len() >= 2, "{signing_keys}");
    remote.same_as(
        &["signing-keys", "revoke", retired[0]],
        &["signing-keys", "revoke", retired[1]],
    );
    remote.same(&["signing-keys", "list"]);
    remote.same(&["audit", "verify", "--json"]);
}

async fn leak_checks(db: Db) {
    let remote = Remote::start(db);
    // Read-only: the same candidates give the same lines.
    let candidates = format!("not a key\n\n{}\napk_prod_short\n", remote.key);
    for args in [
        &["keys", "check-leak"][..],
        &["keys", "check-leak", "--json"],
    ] {
        let direct = remote.db.run_stdin(args, &candidates);
        let over_http = remote.remote_stdin(args, Some(&candidates));
        assert_same_outputs(&direct, &over_http, &format!("{args:?}"));
        assert!(over_http.status.success(), "{}", stderr(&over_http));
        assert!(!stdout(&over_http).contains(&remote.key));
    }
    // --revoke: a twin key on each side, named twice.
    let (one, two) = (
        remote.db.create_key("leaked", "prod"),
        remote.db.create_key("leaked", "prod"),
    );
    let args = ["keys", "check-leak", "--revoke", "--json"];
    let direct = remote
        .db
        .run_stdin(&args, &format!("{}\nx\n{}\n", one.key, one.key));
    let over_http = remote.remote_stdin(&args, Some(&format!("{}\nx\n{}\n", two.key, two.key)));
    assert_same_outputs(&direct, &over_http, "check-leak --revoke");
    assert_eq!(json_of(&over_http)[0]["revoked"], true);
    let show = remote.db.json(&["keys", "show", &two.id, "--json"]);
    assert_eq!(show["status"], "revoked", "{show}");
    // More candidates than one request carries: every line is answered.
    let many: String = (0..250).map(|n| format!("candidate {n}\n")).collect();
    let over_http = remote.remote_stdin(&["keys", "check-leak", "--json"], Some(&many));
    assert_eq!(json_of(&over_http).as_array().unwrap().len(), 250);
    // Revoking the admin's own key over HTTP still answers, then logins fail.
    let own = format!("{}\n", remote.key);
    let over_http = remote.remote_stdin(&["keys", "check-leak", "--revoke"], Some(&own));
    assert!(over_http.status.success(), "{}", stderr(&over_http));
    assert_clean_failure(&remote.remote(&["keys", "list"]));
}
