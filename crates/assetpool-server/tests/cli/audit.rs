//! The audit log through the real binary: the command line's actor is the
//! process's user, a change whose entry cannot be written does not land,
//! and `audit verify` finds a tampered entry. SQLite and PostgreSQL.

use crate::helpers::*;

async fn postgres(test: &str) -> Option<Db> {
    Db::postgres(test).await
}

fn is_sqlite(db: &Db) -> bool {
    db.url.starts_with("sqlite:")
}

/// `USER` and `LOGNAME` say "evil"; the audit log names the real user.
fn the_actor_is_the_process_user(db: &Db) {
    let mut create = db.cmd(&[
        "keys", "create", "--name", "shop", "--env", "prod", "--json",
    ]);
    create.env("USER", "evil").env("LOGNAME", "evil");
    let key = Key::from_json(&json_of(&output(create, None)));
    let entries = db.json(&["audit", "list", "--json"]);
    assert_eq!(entries[0]["action"], "key.create");
    assert_eq!(entries[0]["target"], key.id.as_str());
    assert_eq!(entries[0]["actor"], format!("cli:{}", process_user()));
    assert_ne!(process_user(), "evil");
}

#[test]
fn the_cli_actor_is_the_process_user_not_user_on_sqlite() {
    the_actor_is_the_process_user(&Db::new());
}

#[tokio::test]
async fn the_cli_actor_is_the_process_user_not_user_on_postgres() {
    let Some(db) = postgres("the cli actor is the process user").await else {
        return;
    };
    the_actor_is_the_process_user(&db);
}

/// The database refuses new audit entries (a full disk, a lock): the
/// revocation fails with one line and the key stays active.
async fn a_revocation_without_its_entry_does_not_land(db: Db) {
    let key = db.create_key("shop", "prod");
    if is_sqlite(&db) {
        db.sql(
            "CREATE TRIGGER audit_log_full BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
    } else {
        db.sql(
            "CREATE FUNCTION audit_log_full() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
        )
        .await;
        db.sql(
            "CREATE TRIGGER audit_log_full BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION audit_log_full()",
        )
        .await;
    }
    assert_clean_failure(&db.run(&["keys", "revoke", &key.id]));
    assert_eq!(db.show_key(&key.id)["status"], "active");
}

#[tokio::test]
async fn a_revocation_whose_audit_entry_cannot_be_written_does_not_land_on_sqlite() {
    a_revocation_without_its_entry_does_not_land(Db::new()).await;
}

#[tokio::test]
async fn a_revocation_whose_audit_entry_cannot_be_written_does_not_land_on_postgres() {
    let Some(db) = postgres("a revocation without its audit entry").await else {
        return;
    };
    a_revocation_without_its_entry_does_not_land(db).await;
}

/// `audit verify` passes on an untouched log and names the first entry
/// someone with write access to the database changed.
async fn audit_verify_finds_a_tampered_entry(db: Db) {
    let key = db.create_key("shop", "prod");
    db.ok(&["keys", "revoke", &key.id]);
    assert_clean_failure(&db.run(&["keys", "revoke", "key_nope"]));
    let verified = db.json(&["audit", "verify", "--json"]);
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["checked"], 3);
    assert_eq!(verified["lastHash"].as_str().unwrap().len(), 64);
    assert!(db
        .ok(&["audit", "verify"])
        .starts_with("ok: 3 entries checked"));

    let entries = db.json(&["audit", "list", "--json"]);
    let revoked = entries[1]["id"].as_i64().unwrap();
    assert_eq!(entries[1]["action"], "key.revoke");
    if is_sqlite(&db) {
        db.sql("DROP TRIGGER audit_log_no_update").await;
    } else {
        db.sql("DROP TRIGGER audit_log_no_change ON audit_log")
            .await;
    }
    db.sql(&format!(
        "UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = {revoked}"
    ))
    .await;
    let line = assert_clean_failure(&db.run(&["audit", "verify"]));
    assert!(
        line.contains(&format!("audit entry {revoked} was changed")),
        "{line}"
    );
    assert_clean_failure(&db.run(&["audit", "verify", "--json"]));
}

#[tokio::test]
async fn audit_verify_finds_a_tampered_entry_on_sqlite() {
    audit_verify_finds_a_tampered_entry(Db::new()).await;
}

#[tokio::test]
async fn audit_verify_finds_a_tampered_entry_on_postgres() {
    let Some(db) = postgres("audit verify finds a tampered entry").await else {
        return;
    };
    audit_verify_finds_a_tampered_entry(db).await;
}
