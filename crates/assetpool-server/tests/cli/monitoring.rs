//! The monitoring commands: `keys usage`, `alerts list|ack`, `audit list` and
//! `keys update --webhook`, alone and after a real server has counted requests.

use crate::helpers::{
    assert_clean_failure, assert_resource_ok, assert_timestamp, fields, json_of, login_ok, output,
    process_user, resource, stdout, Db, Server, PASSWORD,
};
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";
/// What `$USER` says when the commands run (the audit log names the real
/// user all the same).
const OS_USER: &str = "monitor-test";

/// Runs `args` with `USER` set to [`OS_USER`].
fn run_as(db: &Db, args: &[&str]) -> Output {
    let mut command = db.cmd(args);
    command.env("USER", OS_USER);
    output(command, None)
}

fn json_as(db: &Db, args: &[&str]) -> Value {
    json_of(&run_as(db, args))
}

#[test]
fn keys_usage_of_a_fresh_key_shows_zero_totals_and_a_sparkline() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");

    let human = db.ok(&["keys", "usage", &key.id]);
    assert!(human.contains(&format!("API key {}", key.id)), "{human}");
    assert!(human.contains("last 24h"), "{human}");
    assert!(human.contains("hour buckets"), "{human}");
    assert!(human.contains("requests:         0"), "{human}");
    assert!(human.contains("logins:           0"), "{human}");
    assert!(human.contains("failed logins:    0"), "{human}");
    assert!(human.contains("requests per hour"), "{human}");
    let spark = human
        .lines()
        .find(|line| line.trim_start().starts_with('|'))
        .unwrap_or_else(|| panic!("no sparkline line: {human}"));
    assert!(spark.chars().count() <= 80, "{spark:?}");
    assert!(human.contains("min 0  max 0"), "{human}");

    let usage = db.json(&["keys", "usage", &key.id, "--json"]);
    assert_eq!(
        fields(&usage),
        [
            "bucket",
            "distinctAddresses",
            "keyId",
            "lastAddress",
            "lastUsedAt",
            "series",
            "since",
            "totals"
        ]
    );
    assert_eq!(usage["keyId"], key.id.as_str());
    assert_eq!(usage["bucket"], "hour");
    assert_timestamp(&usage["since"]);
    assert_eq!(usage["lastUsedAt"], Value::Null);
    assert_eq!(usage["lastAddress"], Value::Null);
    assert_eq!(usage["distinctAddresses"], serde_json::json!([]));
    let series = usage["series"].as_array().unwrap();
    assert!(
        (24..=26).contains(&series.len()),
        "{} buckets",
        series.len()
    );
    for bucket in series {
        assert_timestamp(&bucket["start"]);
        assert_eq!(bucket["requests"], 0);
    }
    let totals = &usage["totals"];
    for name in [
        "requests",
        "success",
        "serverErrors",
        "logins",
        "failedLogins",
    ] {
        assert_eq!(totals[name], 0, "{name}: {totals}");
    }
    assert_eq!(totals["clientErrors"], serde_json::json!({}));

    // Minute buckets over 2 h: 120 or 121 of them, summed in pairs to fit.
    let minutes = db.ok(&[
        "keys", "usage", &key.id, "--since", "2h", "--bucket", "minute",
    ]);
    assert!(minutes.contains("adjacent buckets summed"), "{minutes}");
    let days = db.json(&[
        "keys", "usage", &key.id, "--since", "7d", "--bucket", "day", "--json",
    ]);
    assert_eq!(days["bucket"], "day");
}

#[test]
fn keys_usage_refuses_bad_options_cleanly() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    for since in ["5x", "0h", "-1h", "h", "1.5h", "99999999999d"] {
        assert_clean_failure(&db.run(&["keys", "usage", &key.id, "--since", since]));
    }
    let line = assert_clean_failure(&db.run(&["keys", "usage", &key.id, "--bucket", "week"]));
    assert!(line.contains("--bucket"), "{line}");
    // Minute buckets are kept 48 hours.
    let line = assert_clean_failure(&db.run(&[
        "keys", "usage", &key.id, "--bucket", "minute", "--since", "3d",
    ]));
    assert!(line.contains("48 hours"), "{line}");
    assert_clean_failure(&db.run(&["keys", "usage", &key.id, "--since", "100d"]));
    let line = assert_clean_failure(&db.run(&["keys", "usage", "key_nope", "--json"]));
    assert!(line.contains("no API key"), "{line}");
}

/// `--since` takes the one period grammar of the admin API's `?since=`: a
/// number with an optional unit (s, m or min, h, d, w) in any case, bare for
/// seconds, at most ten years.
#[test]
fn since_options_take_the_admin_apis_grammar() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    for since in ["7200", "120MIN", "2H"] {
        let usage = db.json(&[
            "keys", "usage", &key.id, "--since", since, "--bucket", "minute", "--json",
        ]);
        assert_eq!(usage["bucket"], "minute", "{since}");
    }
    for since in ["3600", "1w", "3660d"] {
        db.ok(&["alerts", "list", "--since", since]);
    }
    for since in ["0", "1.5h", "3661d"] {
        assert_clean_failure(&db.run(&["alerts", "list", "--since", since]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_usage_counts_the_requests_of_a_server_after_a_graceful_stop() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let mut server = Server::start(&db, &[]);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    for _ in 0..5 {
        assert_resource_ok(&server, &key.key, &tokens.access).await;
    }
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let usage = db.json(&[
        "keys", "usage", &key.id, "--since", "1h", "--bucket", "minute", "--json",
    ]);
    let totals = &usage["totals"];
    assert_eq!(totals["requests"], 6, "{totals}");
    assert_eq!(totals["success"], 6, "{totals}");
    assert_eq!(totals["logins"], 1, "{totals}");
    assert_eq!(totals["failedLogins"], 0, "{totals}");
    assert_eq!(totals["serverErrors"], 0, "{totals}");
    assert_timestamp(&usage["lastUsedAt"]);
    assert_eq!(usage["lastAddress"], "127.0.0.1");
    let days = usage["distinctAddresses"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{usage}");
    assert_eq!(days[0]["addresses"], 1);
    let busy: u64 = usage["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(busy, 6);

    let human = db.ok(&[
        "keys", "usage", &key.id, "--since", "1h", "--bucket", "minute",
    ]);
    assert!(human.contains("requests:         6"), "{human}");
    assert!(human.contains("from 127.0.0.1"), "{human}");
    assert!(
        human.contains('█'),
        "the busiest minute is not a full bar: {human}"
    );
}

/// Polls `alerts list --json` until an alert of `rule` appears (at most 10 s).
fn wait_for_alert(db: &Db, rule: &str) -> Value {
    let start = Instant::now();
    loop {
        let alerts = db.json(&["alerts", "list", "--json"]);
        if let Some(alert) = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["rule"] == rule)
        {
            return alert.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {rule} alert within 10 s: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_presented_to_a_server_raises_an_alert_the_cli_acknowledges() {
    let db = Db::new();
    assert_eq!(
        db.json(&["alerts", "list", "--json"]),
        serde_json::json!([])
    );
    assert!(db.ok(&["alerts", "list"]).contains("(none)"));

    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let server = Server::start(&db, &[]);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    db.ok(&["keys", "revoke", &key.id]);
    let start = Instant::now();
    loop {
        let (status, body) = resource(&server, &key.key, &tokens.access).await;
        if status == 401 && body["error"] == "api_key_revoked" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let alert = tokio::task::block_in_place(|| wait_for_alert(&db, "revoked_key_used"));
    let id = alert["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("alr_"), "{alert}");
    assert_eq!(alert["apiKey"], key.id.as_str());
    assert_eq!(alert["acknowledgedAt"], Value::Null);
    assert_timestamp(&alert["firstSeenAt"]);
    assert_timestamp(&alert["lastSeenAt"]);
    let human = db.ok(&["alerts", "list", "--since", "1h"]);
    assert!(
        human.contains(&id) && human.contains("revoked_key_used"),
        "{human}"
    );
    let old = db.json(&["alerts", "list", "--since", "1h", "--limit", "1", "--json"]);
    assert_eq!(old.as_array().unwrap().len(), 1);

    let acked = json_as(&db, &["alerts", "ack", &id, "--json"]);
    assert_eq!(acked["id"], id.as_str());
    assert_timestamp(&acked["acknowledgedAt"]);
    let by = format!("cli:{}", process_user());
    assert_eq!(acked["acknowledgedBy"], by.as_str());
    let listed = db.json(&["alerts", "list", "--json"]);
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["acknowledgedBy"], by.as_str());
    assert!(db.ok(&["alerts", "list"]).contains(&format!("yes ({by})")));

    let line = assert_clean_failure(&db.run(&["alerts", "ack", "alr_nope"]));
    assert!(line.contains("no alert"), "{line}");
    assert_clean_failure(&db.run(&["alerts", "list", "--since", "soon"]));
    server.assert_no_secrets(&[&key.key, PASSWORD, &tokens.access]);
}

#[test]
fn audit_list_shows_every_admin_action_newest_first() {
    let db = Db::new();
    assert_eq!(db.json(&["audit", "list", "--json"]), serde_json::json!([]));
    let key = create_key_as(&db);
    json_as(&db, &["keys", "revoke", &key, "--json"]);
    let mut create = db.cmd(&["users", "create", "--email", EMAIL, "--password-stdin"]);
    create.env("USER", OS_USER);
    assert!(output(create, Some(&format!("{PASSWORD}\n")))
        .status
        .success());
    assert!(run_as(&db, &["users", "disable", EMAIL]).status.success());
    assert_clean_failure(&run_as(&db, &["keys", "revoke", "key_nope"]));

    let entries = db.json(&["audit", "list", "--json"]);
    let entries = entries.as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap(),
                entry["target"].as_str().unwrap(),
                entry["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("key.revoke", "key_nope", "failure"),
            ("user.disable", EMAIL, "success"),
            ("user.create", EMAIL, "success"),
            ("key.revoke", key.as_str(), "success"),
            ("key.create", key.as_str(), "success"),
        ]
    );
    assert_eq!(entries[0]["error"], "not_found");
    for entry in entries {
        assert_eq!(entry["actor"], format!("cli:{}", process_user()));
        assert_timestamp(&entry["at"]);
    }
    assert!(entries[1]["error"].is_null());
    let ids: Vec<i64> = entries
        .iter()
        .map(|entry| entry["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    let page = db.json(&["audit", "list", "--limit", "2", "--json"]);
    assert_eq!(page.as_array().unwrap().len(), 2);
    let before = ids[1].to_string();
    let older = db.json(&["audit", "list", "--before", &before, "--json"]);
    assert_eq!(older.as_array().unwrap().len(), 3);

    let human = db.ok(&["audit", "list"]);
    assert!(
        human.contains("ACTOR") && human.contains("failure (not_found)"),
        "{human}"
    );

    // Neither $USER nor $LOGNAME names the actor: the process's user does.
    let mut command = db.cmd(&["keys", "revoke", &key]);
    command.env_remove("USER").env("LOGNAME", "fallback");
    output(command, None);
    let latest = db.json(&["audit", "list", "--limit", "1", "--json"]);
    assert_eq!(latest[0]["actor"], format!("cli:{}", process_user()));
}

/// A key id from `keys create` run as [`OS_USER`].
fn create_key_as(db: &Db) -> String {
    let created = json_as(
        db,
        &[
            "keys", "create", "--name", "shop", "--env", "prod", "--json",
        ],
    );
    created["id"].as_str().unwrap().to_owned()
}

#[test]
fn keys_update_webhook_prints_its_secret_once() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    let url = "https://example.com/hook";

    let human = db.ok(&["keys", "update", &key.id, "--webhook", url]);
    let line = human
        .lines()
        .find(|line| line.starts_with("webhook secret: whsec_"))
        .unwrap_or_else(|| panic!("no secret line: {human}"));
    assert!(line.ends_with("(shown once)"), "{line}");
    let secret = line
        .trim_start_matches("webhook secret: ")
        .trim_end_matches(" (shown once)");

    let updated = db.json(&["keys", "update", &key.id, "--webhook", url, "--json"]);
    let new_secret = updated["webhookSecret"].as_str().unwrap();
    assert!(
        new_secret.starts_with("whsec_") && new_secret.len() > 40,
        "{new_secret}"
    );
    assert_ne!(new_secret, secret, "a new webhook gets a new secret");
    assert_eq!(updated["id"], key.id.as_str());

    // Shown once: never by `keys show`, nor in the audit log.
    let shown = db.ok(&["keys", "show", &key.id, "--json"]);
    let audit = db.ok(&["audit", "list", "--json"]);
    for text in [&shown, &audit] {
        assert!(!text.contains(secret) && !text.contains(new_secret));
    }
    assert!(audit.contains("key.webhook"), "{audit}");

    let removed = db.json(&["keys", "update", &key.id, "--webhook", "none", "--json"]);
    assert!(removed.get("webhookSecret").is_none(), "{removed}");
    assert!(db
        .ok(&["keys", "update", &key.id, "--webhook", "none"])
        .contains("removed"));

    for bad in ["ftp://example.com/hook", "not a url", "https://"] {
        let line = assert_clean_failure(&db.run(&["keys", "update", &key.id, "--webhook", bad]));
        assert!(line.contains("webhook URL"), "{line}");
    }
    assert_clean_failure(&db.run(&["keys", "update", "key_nope", "--webhook", url]));
    let line = assert_clean_failure(&db.run(&["keys", "update", &key.id]));
    assert!(line.contains("--webhook"), "{line}");
    assert!(
        stdout(&db.run(&["keys", "update", &key.id, "--webhook", url])).contains("(shown once)")
    );
}

#[test]
fn bad_alert_and_usage_settings_stop_serve_with_one_line() {
    let db = Db::new();
    let message = assert_clean_failure(&db.run(&["serve", "--alert-disable", "nope"]));
    assert!(message.contains("unknown alert rule"), "{message}");
    let message = assert_clean_failure(&db.run(&["serve", "--usage-tracking", "maybe"]));
    assert!(message.contains("usage-tracking"), "{message}");
    let message = assert_clean_failure(&db.run(&["serve", "--alert-rate-factor", "1"]));
    assert!(message.contains("alert-rate-factor"), "{message}");
    let config = db.path().join("monitoring.toml");
    std::fs::write(&config, "alert-disable = [\"rate_spike\", \"nope\"]\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let message = assert_clean_failure(&db.run(&["serve", "--config", &config]));
    assert!(message.contains("alert-disable"), "{message}");
}

#[tokio::test]
async fn serve_accepts_monitoring_settings_from_flags_environment_and_file() {
    let db = Db::new();
    let config = db.path().join("monitoring.toml");
    std::fs::write(
        &config,
        "usage-tracking = false\nalert-disable = [\"rate_spike\"]\nalert-failed-logins = 5\n",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start_with_env(
        &db,
        &["--config", &config, "--alert-rate-min", "10"],
        &[("ASSETPOOL_ALERT_RATE_FACTOR", "20")],
    );
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;
    assert!(server.terminate().success());
    // Usage tracking was off (from the file): nothing counted, though the
    // graceful stop wrote the key's last use.
    let usage = json_of(&db.run(&["keys", "usage", &key.id, "--json"]));
    assert_eq!(usage["totals"]["requests"], 0, "{usage}");
    assert!(usage["lastUsedAt"].is_string(), "{usage}");
}

/// `keys update --webhook` refuses private, loopback and link-local targets
/// in one line, unless ASSETPOOL_ALLOW_PRIVATE_WEBHOOKS or the config file's
/// `allow-private-webhooks = true` allows them (as `serve
/// --allow-private-webhooks` does for the admin API and for delivery).
#[test]
fn keys_update_webhook_refuses_private_targets_unless_allowed() {
    let db = Db::new();
    let key = db.create_key("shop", "prod");
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/",
        "https://localhost/x",
    ] {
        let line = crate::helpers::assert_clean_failure(&db.run(&[
            "keys",
            "update",
            &key.id,
            "--webhook",
            url,
        ]));
        assert!(line.contains("private"), "{url}: {line}");
    }
    let mut allowed = db.cmd(&[
        "keys",
        "update",
        &key.id,
        "--webhook",
        "http://127.0.0.1:9/hook",
    ]);
    allowed.env("ASSETPOOL_ALLOW_PRIVATE_WEBHOOKS", "1");
    let output = crate::helpers::output(allowed, None);
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    let config = db.path().join("private-webhooks.toml");
    std::fs::write(&config, "allow-private-webhooks = true\n").unwrap();
    db.ok(&[
        "keys",
        "update",
        &key.id,
        "--webhook",
        "http://10.0.0.5/hook",
        "--config",
        config.to_str().unwrap(),
    ]);
    let mut refused = db.cmd(&[
        "keys",
        "update",
        &key.id,
        "--webhook",
        "http://10.0.0.6/hook",
    ]);
    refused.env("ASSETPOOL_ALLOW_PRIVATE_WEBHOOKS", "false");
    assert!(!crate::helpers::output(refused, None).status.success());
}
