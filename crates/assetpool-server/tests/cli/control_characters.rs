//! No argument of any command, and no password read from stdin, may hold a
//! control character: one readable error line and a non-zero exit, and
//! nothing written.

use crate::helpers::{assert_clean_failure, Db, PASSWORD};

#[test]
fn arguments_with_control_characters_are_refused() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    for bad in ["x\u{1b}[2Jy", "line\nbreak", "tab\there", "c1\u{85}"] {
        for args in [
            vec!["keys", "create", "--name", bad, "--env", "prod"],
            vec!["keys", "revoke", &key.id, "--reason", bad],
            vec!["keys", "show", bad],
            vec!["users", "disable", bad],
            vec!["users", "attempts", bad],
        ] {
            let line = assert_clean_failure(&db.run(&args));
            assert!(line.contains("control character"), "{args:?}: {line}");
        }
    }
    let keys = db.json(&["keys", "list", "--json"]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "nothing was created: {keys}"
    );
    assert_eq!(db.show_key(&key.id)["status"], "active");
}

#[test]
fn passwords_with_control_characters_are_refused() {
    let db = Db::new();
    for password in [
        format!("{PASSWORD}\u{1b}[2J"),
        format!("{PASSWORD}\u{0}"),
        format!("tab\t{PASSWORD}"),
    ] {
        let output = db.run_stdin(
            &[
                "users",
                "create",
                "--email",
                "alice@example.com",
                "--password-stdin",
            ],
            &format!("{password}\n"),
        );
        let line = assert_clean_failure(&output);
        assert!(line.contains("control characters"), "{line}");
    }
    let users = db.json(&["users", "list", "--json"]);
    assert_eq!(users, serde_json::json!([]));
}
