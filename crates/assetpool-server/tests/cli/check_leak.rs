//! `assetpool keys check-leak` (candidates on stdin; never printed), and the
//! leak-report options of `serve`.

use crate::helpers::{assert_clean_failure, client, json_of, stderr, stdout, Db, Server};
use serde_json::Value;

/// A live key, a revoked key, garbage, an empty line and a well-formed key
/// of another database.
fn candidates(db: &Db) -> (String, String, String, String) {
    let live = db.create_key("billing", "prod");
    let revoked = db.create_key("old billing", "dev");
    db.ok(&["keys", "revoke", &revoked.id]);
    let stranger = Db::new().create_key("elsewhere", "prod").key;
    let input = format!(
        "  {}  \n{}\nnot-a-key\n\n{stranger}\n",
        live.key, revoked.key
    );
    (
        input,
        live.id,
        revoked.id,
        [live.key, revoked.key, stranger].join(" "),
    )
}

fn assert_no_keys(text: &str, keys: &str) {
    for key in keys.split(' ') {
        assert!(!text.contains(key), "a candidate key was printed: {text}");
    }
}

#[test]
fn check_leak_names_the_keys_of_this_service_without_printing_them() {
    let db = Db::new();
    let (input, live, revoked, keys) = candidates(&db);
    let output = db.run_stdin(&["keys", "check-leak"], &input);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_no_keys(&text, &keys);
    assert_no_keys(&stderr(&output), &keys);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!("line 1: live key {live} (billing, production, active)").as_str(),
            format!("line 2: key {revoked} (old billing, development, revoked)").as_str(),
            "line 3: not a key of this service",
            "line 5: not a key of this service",
            "2 of 4 candidates are keys of this service (1 live).",
        ]
    );
    // Read-only: the live key is still active.
    assert_eq!(db.show_key(&live)["status"], "active");
}

#[test]
fn check_leak_json_is_one_document_per_candidate_line() {
    let db = Db::new();
    let (input, live, revoked, keys) = candidates(&db);
    let output = db.run_stdin(&["keys", "check-leak", "--json"], &input);
    assert_no_keys(&stdout(&output), &keys);
    let lines = json_of(&output);
    let lines = lines.as_array().unwrap();
    let numbers: Vec<u64> = lines
        .iter()
        .map(|line| line["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 5]);
    assert_eq!(lines[0]["keyId"], live.as_str());
    assert_eq!(lines[0]["status"], "active");
    assert_eq!(lines[0]["name"], "billing");
    assert_eq!(lines[0]["environment"], "production");
    assert_eq!(lines[1]["keyId"], revoked.as_str());
    assert_eq!(lines[1]["status"], "revoked");
    for unknown in &lines[2..] {
        assert_eq!(unknown["keyId"], Value::Null);
        assert_eq!(unknown["status"], Value::Null);
    }
    assert!(lines.iter().all(|line| line["revoked"] == false));
}

#[test]
fn check_leak_revoke_revokes_the_live_keys_found() {
    let db = Db::new();
    let (input, live, _, keys) = candidates(&db);
    let output = db.run_stdin(&["keys", "check-leak", "--revoke"], &input);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_no_keys(&text, &keys);
    assert!(
        text.contains(&format!(
            "line 1: live key {live} (billing, production, revoked): revoked now"
        )),
        "{text}"
    );
    let key = db.show_key(&live);
    assert_eq!(key["status"], "revoked");
    assert_eq!(key["revokedReason"], "reported as leaked");
}

#[test]
fn check_leak_with_empty_input_finds_nothing() {
    let db = Db::new();
    let output = db.run_stdin(&["keys", "check-leak"], "\n\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "0 of 0 candidates are keys of this service (0 live)."
    );
}

#[test]
fn serve_refuses_a_bad_leak_report_keys_file_or_policy() {
    let db = Db::new();
    let message = assert_clean_failure(&db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--leak-report-keys",
        "no-such-file.json",
    ]));
    assert!(message.contains("no-such-file.json"), "{message}");
    let bad = db.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#,
    )
    .unwrap();
    let message = assert_clean_failure(&db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--leak-report-keys",
        bad.to_str().unwrap(),
    ]));
    assert!(message.contains("bad.json"), "{message}");
    let output = db.run(&["serve", "--on-leak", "delete"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("alert or revoke"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn serve_takes_the_leak_secret_from_the_environment_and_the_policy_from_a_flag() {
    let db = Db::new();
    let key = db.create_key("billing", "prod");
    let secret = "scanner shared secret";
    let server = Server::start_with_env(
        &db,
        &["--on-leak", "revoke"],
        &[("ASSETPOOL_LEAK_REPORT_SECRET", secret)],
    );
    let body = serde_json::json!([{"token": key.key, "type": "assetpool", "url": "https://example.com/x", "source": "content"}])
        .to_string();
    // Signed as assetpool signs its own webhooks: t=<now>,v1=<HMAC of "<t>.<body>">.
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let signature = assetpool_server::webhooks::signature_header(secret.as_bytes(), now, &body);
    let response = client()
        .post(server.at("/api/keys/leaked"))
        .header("content-type", "application/json")
        .header("x-assetpool-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let verdicts: Value = response.json().await.unwrap();
    assert_eq!(verdicts[0]["label"], "true_positive");
    assert_eq!(db.show_key(&key.id)["status"], "revoked");
    server.assert_no_secrets(&[&key.key, secret]);
}
