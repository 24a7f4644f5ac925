//! `assetpool export` and `assetpool import` through the real binary: a
//! round trip SQLite -> PostgreSQL -> SQLite keeps keys, passwords, sessions,
//! signing keys and the issuer working, and alerts and the audit log (its
//! hash chain verifies after the move); import refuses a database holding
//! data and malformed input, reads a file in place in any order, and an
//! export holds hashes, never secrets.
//!
//! The PostgreSQL part skips (with a line on stderr) when PostgreSQL is
//! unreachable, unless `ASSETPOOL_REQUIRE_POSTGRES=1`. The schema is made here
//! with `assetpool_store_tests::postgres::fresh_schema`.

use crate::helpers::{
    assert_clean_failure, assert_resource_401, assert_resource_ok, client, get_json, json_of, kid,
    login, login_ok, resource, stderr, stdout, Db, Key, Server, Tokens, PASSWORD,
};
use assetpool_store_tests::postgres::{fresh_schema, TestSchema};
use serde_json::{json, Value};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const BOB_PASSWORD: &str = "another fine passphrase 1977";

/// What was made on the first (SQLite) database.
struct Original {
    active: Key,
    revoked: Key,
    issuer: String,
    /// Alice's session, logged in on the SQLite server (token signed by the
    /// signing key retired since).
    session: Tokens,
    active_kid: String,
}

/// A database on a fresh PostgreSQL schema, or `None` to skip. The schema
/// lives as long as the returned guard.
async fn postgres_db(test: &str) -> Option<(Db, TestSchema)> {
    let schema = fresh_schema(test).await?;
    let mut db = Db::new();
    db.url = schema.url.clone();
    Some((db, schema))
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `assetpool export`: stdout, after checking the counts line on stderr.
fn export(db: &Db) -> String {
    let output = db.run(&["export", "--include-signing-keys"]);
    assert!(
        output.status.success(),
        "export failed: {}",
        stderr(&output)
    );
    let err = stderr(&output);
    assert!(err.starts_with("Exported "), "stderr: {err}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"type":"header","format":"assetpool-export","version":1}"#
    );
    for line in &lines[1..] {
        let record: Value = serde_json::from_str(line).expect("one JSON record per line");
        assert!(record["type"].is_string(), "{line}");
    }
    text
}

/// `assetpool import --json` into `db`: the summary.
fn import(db: &Db, export: &str) -> Value {
    json_of(&db.run_stdin(&["import", "--json"], export))
}

/// On SQLite: two keys (one revoked), two users, a session logged in through
/// a running server, the revoked key presented (an alert, acknowledged),
/// then a signing key rotation; the audit log records the changes.
async fn original(db: &Db) -> Original {
    let active = db.create_key("shop", "prod");
    let revoked = db.create_key("old", "prod");
    db.create_user(ALICE, PASSWORD);
    db.create_user(BOB, BOB_PASSWORD);
    let mut server = Server::start(db, &[]);
    let issuer = metadata_issuer(&server).await;
    let session = login_ok(&server, &active.key, ALICE, PASSWORD).await;
    assert_resource_ok(&server, &active.key, &session.access).await;
    db.ok(&["keys", "revoke", &revoked.id, "--reason", "retired"]);
    let alert = raise_revoked_key_alert(db, &server, &revoked.key, &session.access).await;
    db.ok(&["alerts", "ack", &alert]);
    let rotated = db.json(&["signing-keys", "rotate", "--json"]);
    let active_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(kid(&session.access), active_kid);
    server.terminate();
    Original {
        active,
        revoked,
        issuer,
        session,
        active_kid,
    }
}

/// Presents the revoked `key` until the server raises its alert (at most
/// 10 s; the server learns of the revocation within a second); the alert id.
async fn raise_revoked_key_alert(db: &Db, server: &Server, key: &str, token: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        resource(server, key, token).await;
        let alerts = db.json(&["alerts", "list", "--json"]);
        if let Some(alert) = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["rule"] == "revoked_key_used")
        {
            return alert["id"].as_str().expect("alert id").to_owned();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no revoked_key_used alert within 10 s: {alerts}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Alerts and the audit log of `target` are those of `source`, and the
/// audit chain verifies on both with the same last hash.
fn assert_same_alerts_and_audit(source: &Db, target: &Db) {
    let alerts = source.json(&["alerts", "list", "--json"]);
    assert!(
        alerts.as_array().is_some_and(|alerts| !alerts.is_empty()),
        "{alerts}"
    );
    assert_eq!(target.json(&["alerts", "list", "--json"]), alerts);
    let entries = source.json(&["audit", "list", "--json", "--limit", "1000"]);
    assert!(
        entries.as_array().is_some_and(|entries| entries.len() >= 5),
        "{entries}"
    );
    assert_eq!(
        target.json(&["audit", "list", "--json", "--limit", "1000"]),
        entries
    );
    let verified = source.json(&["audit", "verify", "--json"]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(target.json(&["audit", "verify", "--json"]), verified);
}

async fn metadata_issuer(server: &Server) -> String {
    let metadata = get_json(server, "/.well-known/oauth-authorization-server").await;
    metadata["issuer"].as_str().expect("issuer").to_owned()
}

/// POST /api/authentication/refresh: (status, body).
async fn refresh(server: &Server, key: &str, refresh_token: &str) -> (u16, Value) {
    let response = client()
        .post(server.at("/api/authentication/refresh"))
        .header("x-api-key", key)
        .json(&json!({ "refreshToken": refresh_token }))
        .send()
        .await
        .expect("refresh request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// On a server over the imported database: the issuer is the original one,
/// the active key and both passwords work with tokens of the active signing
/// key, a token issued before the move still works, the revoked key is
/// refused, the refresh token `live_refresh` renews, and `spent_refresh` (if
/// any; checked last, as it revokes the session) is refused as reused.
/// Returns the renewed session's refresh token.
async fn assert_moved(
    db: &Db,
    original: &Original,
    live_refresh: &str,
    spent_refresh: Option<&str>,
    serve_args: &[&str],
) -> String {
    let mut server = Server::start(db, serve_args);
    assert_eq!(metadata_issuer(&server).await, original.issuer);
    let key = &original.active.key;
    let alice = login_ok(&server, key, ALICE, PASSWORD).await;
    let bob = login_ok(&server, key, BOB, BOB_PASSWORD).await;
    for tokens in [&alice, &bob] {
        assert_eq!(kid(&tokens.access), original.active_kid);
        assert_resource_ok(&server, key, &tokens.access).await;
    }
    let (status, body) = login(&server, key, ALICE, "not the password at all").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    assert_resource_ok(&server, key, &original.session.access).await;

    let revoked = &original.revoked.key;
    assert_resource_401(&server, revoked, &alice.access, "api_key_revoked").await;
    let (status, body) = login(&server, revoked, ALICE, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("api_key_revoked"))
    );

    let (status, renewed) = refresh(&server, key, live_refresh).await;
    assert_eq!(
        status, 200,
        "the moved refresh token does not renew: {renewed}"
    );
    if let Some(spent_refresh) = spent_refresh {
        let (status, body) = refresh(&server, key, spent_refresh).await;
        assert_eq!(
            status, 401,
            "a refresh token spent before the move renews: {body}"
        );
    }

    server.assert_no_secrets(&[key, revoked, PASSWORD, BOB_PASSWORD, &alice.access]);
    server.terminate();
    renewed["refreshToken"]
        .as_str()
        .expect("refreshToken")
        .to_owned()
}

fn assert_counts(summary: &Value, sessions: u64, refresh_tokens: u64) {
    assert_eq!(summary["applications"], 2, "{summary}");
    assert_eq!(summary["apiKeys"], 2, "{summary}");
    assert_eq!(summary["users"], 2, "{summary}");
    assert_eq!(summary["signingKeys"], 2, "{summary}");
    assert_eq!(summary["sessions"], sessions, "{summary}");
    assert_eq!(summary["refreshTokens"], refresh_tokens, "{summary}");
    assert!(summary["settings"].as_u64().unwrap() >= 2, "{summary}");
}

#[tokio::test]
async fn round_trip_sqlite_postgres_sqlite_keeps_everything_working() {
    let sqlite = Db::new();
    let original = original(&sqlite).await;
    let first_export = export(&sqlite);
    for secret in [
        original.active.key.as_str(),
        original.revoked.key.as_str(),
        PASSWORD,
        BOB_PASSWORD,
        &original.session.access,
        &original.session.refresh,
    ] {
        assert!(!first_export.contains(secret), "a secret in the export");
    }
    assert!(first_export.contains(&sha256_hex(&original.active.key)));
    assert!(first_export.contains(&sha256_hex(&original.session.refresh)));
    assert!(first_export.contains("$argon2id$"));
    // The signing keys are sealed with the key file beside the SQLite database.
    assert!(first_export.contains("xchacha20poly1305:"));
    assert!(!first_export.contains("plain:"), "an unsealed signing key");
    let kek_file = sqlite.path().join("test-signing-key.kek");
    let kek_arg = kek_file.display().to_string();

    let Some((postgres, _schema)) = postgres_db("the export/import round trip").await else {
        return;
    };
    let summary = import(&postgres, &first_export);
    assert_counts(&summary, 1, 1);
    assert_eq!(summary["alerts"], 1, "{summary}");
    assert!(summary["auditEntries"].as_u64().unwrap() >= 5, "{summary}");
    assert_same_alerts_and_audit(&sqlite, &postgres);
    assert_eq!(
        export(&postgres),
        first_export,
        "PostgreSQL exports other records"
    );
    let again = postgres.run_stdin(&["import"], &first_export);
    let line = assert_clean_failure(&again);
    assert!(line.contains("not empty"), "{line}");

    // PostgreSQL's servers are given the key-encryption key.
    let renewed = assert_moved(
        &postgres,
        &original,
        &original.session.refresh,
        None,
        &["--signing-key-kek-file", &kek_arg],
    )
    .await;

    let second_export = export(&postgres);
    let back = Db::new();
    let summary = import(&back, &second_export);
    // The original session, Alice's and Bob's logins on PostgreSQL; the
    // original refresh token (now spent), its successor and two more.
    assert_counts(&summary, 3, 4);
    assert_eq!(export(&back), second_export);
    assert_same_alerts_and_audit(&postgres, &back);
    // The key file moved beside the new SQLite database is found there.
    std::fs::copy(&kek_file, back.path().join("test-signing-key.kek")).unwrap();
    assert_moved(
        &back,
        &original,
        &renewed,
        Some(&original.session.refresh),
        &[],
    )
    .await;
}

/// Standard input redirected from a file is read in place; records in
/// another order than an export's (here reversed) import all the same.
#[tokio::test]
async fn import_reads_a_file_in_place_in_any_order() {
    let source = Db::new();
    source.create_key("shop", "prod");
    source.create_user(ALICE, PASSWORD);
    let exported = export(&source);
    let mut lines: Vec<&str> = exported.lines().collect();
    lines[1..].reverse();
    let file = source.path().join("reversed.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let target = Db::new();
    let mut command = target.cmd(&["import", "--json"]);
    command.stdin(std::fs::File::open(&file).unwrap());
    let summary = json_of(&command.output().expect("the binary runs"));
    assert_eq!(summary["apiKeys"], 1, "{summary}");
    assert_eq!(summary["users"], 1, "{summary}");
    assert_eq!(export(&target), exported);
}

#[tokio::test]
async fn import_refuses_a_database_holding_data() {
    let source = Db::new();
    source.create_key("shop", "prod");
    let exported = export(&source);
    let target = Db::new();
    target.create_user(ALICE, PASSWORD);
    let line = assert_clean_failure(&target.run_stdin(&["import"], &exported));
    assert!(
        line.starts_with("error: cannot import into sqlite://") && line.contains("not empty"),
        "{line}"
    );
    assert_eq!(target.json(&["keys", "list", "--json"]), json!([]));
    // A key file the import generated stays (another command may already
    // use it), private to its owner.
    let key_file = target.path().join("test-signing-key.kek");
    if key_file.exists() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn malformed_lines_fail_with_their_number_and_no_secret() {
    let source = Db::new();
    source.create_key("shop", "prod");
    let exported = export(&source);
    let mut lines: Vec<String> = exported.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 3, "{exported}");
    let secret = "apk_prod_this-looks-like-a-secret";
    lines[2] = format!(
        r#"{{"type":"user","id":"usr_1","email":"e","password_hash":"x","admin":"{secret}","disabled":false,"created_at":1}}"#
    );
    let target = Db::new();
    let line = assert_clean_failure(&target.run_stdin(&["import"], &(lines.join("\n") + "\n")));
    assert!(line.starts_with("error: line 3: "), "{line}");
    assert!(!line.contains(secret), "{line}");
    lines[2] = format!(r#"{{"type":"user","password_hash":{secret}"#);
    let line = assert_clean_failure(&target.run_stdin(&["import"], &lines.join("\n")));
    assert!(line.starts_with("error: line 3: "), "{line}");
    assert!(!line.contains("this-looks-like"), "{line}");
    // Nothing was written: the database was not even created.
    assert!(!target.path().join("test.db").exists());

    let line = assert_clean_failure(&target.run_stdin(&["import"], "{\"type\":\"user\"}\n"));
    assert!(
        line.starts_with("error: line 1: not an assetpool export"),
        "{line}"
    );
    let line = assert_clean_failure(&target.run_stdin(&["import"], ""));
    assert!(line.starts_with("error: nothing to import"), "{line}");
}
