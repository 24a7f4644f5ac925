//! Who may use `--server` and how: the forms of the option, the admin's
//! credentials (environment or stdin), the refusals of a wrong password, a
//! non-admin, missing credentials and an unreachable server, the same error
//! lines as on the database for unknown ids and refused changes, and the
//! commands that run on the database host only.

use super::{assert_same_outputs, mask, Remote, ADMIN};
use crate::helpers::{assert_clean_failure, output, stderr, stdout, Db, PASSWORD};

crate::on_both_backends! {
    refusals_are_the_same_over_the_admin_api => refusals;
    credentials_come_from_the_environment_or_stdin => credentials;
}

async fn refusals(db: Db) {
    let remote = Remote::start(db);
    let unknown_key = "key_0190f7a0000070008000000000000000";
    let unknown_application = "app_0190f7a0000070008000000000000000";
    let victim = remote.db.create_key("victim", "prod").id;
    remote.db.ok(&["keys", "revoke", &victim]);
    for args in [
        &["keys", "show", unknown_key][..],
        &["keys", "show", unknown_key, "--json"],
        &["keys", "revoke", unknown_key],
        &["keys", "rotate", unknown_key, "--grace", "0"],
        &["keys", "disable", unknown_key],
        &["keys", "enable", unknown_key],
        &["keys", "update", unknown_key, "--name", "x"],
        &["keys", "usage", unknown_key],
        &["keys", "update", unknown_key],
        &[
            "keys",
            "create",
            "--application",
            unknown_application,
            "--name",
            "orphan",
            "--env",
            "stg",
        ],
        &["applications", "show", unknown_application],
        &["applications", "update", unknown_application, "--name", "x"],
        &[
            "applications",
            "add-member",
            unknown_application,
            "nobody@example.com",
        ],
        &["users", "disable", "nobody@example.com"],
        &["users", "update", "nobody@example.com", "--scope", "a"],
        &["alerts", "ack", "alr_0190f7a0000070008000000000000000"],
        &[
            "signing-keys",
            "revoke",
            "sig_0190f7a0000070008000000000000000",
        ],
        &["keys", "revoke", victim.as_str(), "--reason", "x"],
        &["keys", "rotate", victim.as_str()],
        &["keys", "update", victim.as_str(), "--expires-in", "1h"],
    ] {
        let output = remote.same(args);
        if !output.status.success() {
            assert_clean_failure(&output);
        }
    }
    password_refusals(&remote);
}

/// Refusals of commands that read a password or touch signing keys.
fn password_refusals(remote: &Remote) {
    // The active signing key cannot be revoked; an unknown user's password cannot be set.
    let signing_keys = remote.db.json(&["signing-keys", "list", "--json"]);
    let active = signing_keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["status"] == "active")
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .unwrap();
    remote.same(&["signing-keys", "revoke", &active]);
    let args = [
        "users",
        "set-password",
        "nobody@example.com",
        "--password-stdin",
    ];
    let direct = remote.db.run_stdin(&args, &format!("{PASSWORD}\n"));
    let over_http = remote.remote_stdin(&args, Some(&format!("{PASSWORD}\n")));
    assert_same_outputs(&direct, &over_http, "users set-password (unknown)");
    assert_clean_failure(&over_http);
    // A weak password and an existing user: the same refusal.
    let args = ["users", "create", "--email", ADMIN, "--password-stdin"];
    let direct = remote.db.run_stdin(&args, &format!("{PASSWORD}\n"));
    let over_http = remote.remote_stdin(&args, Some(&format!("{PASSWORD}\n")));
    assert_same_outputs(&direct, &over_http, "users create (exists)");
    let args = [
        "users",
        "create",
        "--email",
        "weak@example.com",
        "--password-stdin",
    ];
    let direct = remote.db.run_stdin(&args, "password\n");
    let over_http = remote.remote_stdin(&args, Some("password\n"));
    assert_same_outputs(&direct, &over_http, "users create (weak)");
    assert_clean_failure(&over_http);
}
async fn credentials(db: Db) {
    let remote = Remote::start(db);
    let url = remote.server.url.clone();
    remote.settle_last_use().await;
    let list = ["keys", "list", "--json"];
    let expected = mask(&stdout(&remote.db.run(&list)));
    // --server before or after the subcommand, or ASSETPOOL_SERVER.
    for command in [
        {
            let mut command = remote.bare(&["--server", url.as_str()]);
            command.args(list);
            command
        },
        remote.bare(&[&list[..], &["--server", url.as_str()]].concat()),
        {
            let mut command = remote.bare(&list);
            command.env("ASSETPOOL_SERVER", &url);
            command
        },
    ] {
        let answer = output(command, None);
        assert_eq!(mask(&stdout(&answer)), expected, "{}", stderr(&answer));
    }
    // The admin's password from stdin with --password-stdin.
    let mut command = remote.bare(&[
        "keys",
        "list",
        "--json",
        "--password-stdin",
        "--server",
        url.as_str(),
    ]);
    command.env_remove("ASSETPOOL_PASSWORD");
    let answer = output(command, Some(&format!("{PASSWORD}\n")));
    assert_eq!(mask(&stdout(&answer)), expected, "{}", stderr(&answer));
    credential_refusals(&remote, &url);
    database_host_only(&remote);
}

/// A wrong password, a non-admin, no password, no key, no server: one line each.
fn credential_refusals(remote: &Remote, url: &str) {
    // Wrong password, a non-admin, a bad key, no credentials, no server.
    let mut wrong = remote.bare(&["keys", "list", "--server", url]);
    wrong.env("ASSETPOOL_PASSWORD", "not the password at all");
    let line = assert_clean_failure(&output(wrong, None));
    assert!(
        line.contains("cannot log in") && line.contains("invalid_credentials"),
        "{line}"
    );
    assert!(!line.contains("not the password at all"), "{line}");

    let user = remote.db.run_stdin(
        &[
            "users",
            "create",
            "--email",
            "plain@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(user.status.success());
    let mut plain = remote.bare(&["users", "list", "--server", url]);
    plain.env("ASSETPOOL_USERNAME", "plain@example.com");
    let line = assert_clean_failure(&output(plain, None));
    assert!(
        line.contains("forbidden") && line.contains("plain@example.com"),
        "{line}"
    );

    let mut no_password = remote.bare(&["users", "list", "--server", url]);
    no_password.env_remove("ASSETPOOL_PASSWORD");
    let line = assert_clean_failure(&output(no_password, None));
    assert!(line.contains("ASSETPOOL_PASSWORD"), "{line}");
    let mut no_key = remote.bare(&["users", "list", "--server", url]);
    no_key.env_remove("ASSETPOOL_API_KEY");
    let line = assert_clean_failure(&output(no_key, None));
    assert!(line.contains("ASSETPOOL_API_KEY"), "{line}");
    assert!(!line.contains(&remote.key[8..]), "{line}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let unreachable = format!("http://{address}");
    let line = assert_clean_failure(&output(
        remote.bare(&["users", "list", "--server", unreachable.as_str()]),
        None,
    ));
    assert!(
        line.contains("cannot reach") && line.contains(&unreachable),
        "{line}"
    );
}

/// The commands of the database host refuse `--server`; no secret is printed.
fn database_host_only(remote: &Remote) {
    // Commands of the database host refuse --server (and use no database).
    for args in [
        &["serve"][..],
        &["migrate"],
        &["export"],
        &["import"],
        &["signing-keys", "seal"],
        &["signing-keys", "reseal", "--new-kek-file", "kek"],
    ] {
        let line = assert_clean_failure(&remote.remote(args));
        assert!(
            line.contains("cannot run with --server"),
            "{args:?}: {line}"
        );
    }
    // No secret in any output or in --help.
    for answer in [
        remote.remote(&["keys", "list"]),
        output(remote.bare(&["--help"]), None),
    ] {
        for secret in [PASSWORD, remote.key.as_str()] {
            assert!(!stdout(&answer).contains(secret) && !stderr(&answer).contains(secret));
        }
    }
    remote.server.assert_no_secrets(&[PASSWORD, &remote.key]);
}
