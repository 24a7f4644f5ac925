//! No argument of any command, and no password read from stdin, may hold a
//! control character: one readable error line and a non-zero exit, and
//! nothing written. Control characters already stored are shown escaped.

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

/// Rows that hold terminal escapes (written before the input rule, imported,
/// or written into the database by other means; the CLI's own actor comes
/// from `$USER`) reach the operator's terminal only as visible escapes, in
/// every human output; `--json` keeps the exact text, as JSON escapes.
#[tokio::test]
async fn stored_control_characters_are_shown_escaped() {
    const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m";
    let evil_email = format!("{EVIL}@example.com");
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    db.create_user("alice@example.com", PASSWORD);
    db.ok(&["keys", "revoke", &key.id, "--reason", "leaked"]);
    // Rows written behind the CLI's back (the CLI's own audit actor is the
    // process's user, so a hostile actor is written here too).
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, outcome, detail) \
         VALUES (?, ?, 'key.revoke', ?, 'success', '{}')",
    )
    .bind(now)
    .bind(EVIL)
    .bind(&key.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE api_keys SET name = ? WHERE id = ?")
        .bind(EVIL)
        .bind(&key.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET email = ?")
        .bind(&evil_email)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO login_failures (scope, account, address, failures, last_failure) \
         VALUES ('pair', ?, '203.0.113.9', 3, ?)",
    )
    .bind(&evil_email)
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO alerts (id, rule, subject, account, evidence, first_seen, last_seen, \
         occurrences) VALUES ('alr_escapes', 'failed_logins', ?, ?, ?, ?, ?, 1)",
    )
    .bind(EVIL)
    .bind(&evil_email)
    .bind(serde_json::json!({ "account": evil_email }).to_string())
    .bind(now)
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    for args in [
        vec!["keys", "list"],
        vec!["keys", "show", &key.id],
        vec!["users", "list"],
        vec!["users", "attempts"],
        vec!["alerts", "list"],
        vec!["audit", "list"],
    ] {
        let shown = db.ok(&args);
        assert!(
            !shown
                .chars()
                .any(|character| character.is_control() && character != '\n'),
            "{args:?} printed a control character: {shown:?}"
        );
        assert!(
            shown.contains("evil\\u{1b}]0;pwned\\u{7}"),
            "{args:?}: {shown}"
        );
    }
    let attempts = db.json(&["users", "attempts", "--json"]);
    assert!(
        attempts.to_string().contains("\\u001b]0;pwned\\u0007"),
        "{attempts}"
    );
    let users = db.json(&["users", "list", "--json"]);
    assert_eq!(users[0]["email"], evil_email.as_str());
}
