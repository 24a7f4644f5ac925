//! `keys create/update --rate --burst --quota`, `users attempts` and
//! `users unlock`, through the real binary.

use crate::helpers::{assert_clean_failure, login, login_ok, resource, Db, Key, Server, PASSWORD};

const EMAIL: &str = "alice@example.com";
const WRONG: &str = "not the password, but long";

#[test]
fn keys_carry_rate_limits_and_quotas() {
    let db = Db::new();
    let created = db.json(&[
        "keys",
        "create",
        "--name",
        "metered",
        "--env",
        "prod",
        "--rate",
        "50/s",
        "--burst",
        "100",
        "--quota",
        "100000/day",
        "--json",
    ]);
    let id = created["id"].as_str().unwrap();
    let shown = db.show_key(id);
    assert_eq!(shown["rateLimit"], "50/s");
    assert_eq!(shown["burst"], 100);
    assert_eq!(shown["quota"], "100000/day");
    let human = db.ok(&["keys", "show", id]);
    assert!(human.contains("rate limit:   50/s (burst 100)"), "{human}");
    assert!(human.contains("quota:        100000/day"), "{human}");

    // Only the burst: the rate stays.
    let updated = db.json(&["keys", "update", id, "--burst", "7", "--json"]);
    assert_eq!(updated["rateLimit"], "50/s");
    assert_eq!(updated["burst"], 7);
    // A new rate takes its count as burst unless one is given.
    let updated = db.json(&["keys", "update", id, "--rate", "3000/min", "--json"]);
    assert_eq!(updated["rateLimit"], "3000/min");
    assert_eq!(updated["burst"], 3000);
    // Removing both.
    let updated = db.json(&[
        "keys", "update", id, "--rate", "none", "--quota", "none", "--name", "free", "--json",
    ]);
    assert_eq!(updated["name"], "free");
    assert!(updated.get("rateLimit").is_none(), "{updated}");
    assert!(updated.get("quota").is_none(), "{updated}");
}

#[test]
fn bad_limits_fail_with_one_clear_line() {
    let db = Db::new();
    let key = db.create_key("plain", "prod");
    for (args, expected) in [
        (vec!["--rate", "50/week"], "s, min or h"),
        (vec!["--rate", "0/s"], "positive"),
        (vec!["--quota", "10/year"], "hour, day or month"),
        (vec!["--quota", "lots"], "COUNT/UNIT"),
        (vec!["--burst", "5"], "--burst needs a rate"),
        (vec!["--rate", "none", "--burst", "5"], "--burst cannot"),
        (vec![], "nothing to change"),
    ] {
        let mut command = vec!["keys", "update", &key.id];
        command.extend(args.iter().copied());
        let message = assert_clean_failure(&db.run(&command));
        assert!(message.contains(expected), "{command:?}: {message}");
    }
    let message = assert_clean_failure(&db.run(&["keys", "update", "key_unknown", "--burst", "2"]));
    assert!(message.contains("no API key"), "{message}");
    let message = assert_clean_failure(&db.run(&[
        "keys", "create", "--name", "x", "--env", "prod", "--burst", "3",
    ]));
    assert!(message.contains("--burst needs a rate"), "{message}");
}

#[tokio::test]
async fn a_running_server_applies_a_rate_limit_set_by_the_cli() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key: Key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(resource(&server, &key.key, &tokens.access).await.0, 200);
    db.ok(&["keys", "update", &key.id, "--rate", "1/h", "--burst", "1"]);
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let (status, body) = resource(&server, &key.key, &tokens.access).await;
        statuses.push(status);
        if status == 429 {
            assert_eq!(body["error"], "rate_limited");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never rate limited: {statuses:?}");
}

#[tokio::test]
async fn support_staff_see_and_clear_failed_logins() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    for _ in 0..5 {
        assert_eq!(login(&server, &key.key, EMAIL, WRONG).await.0, 401);
    }
    let (status, body) = login(&server, &key.key, "Alice@Example.com", PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_attempts"))
    );

    let attempts = db.json(&["users", "attempts", EMAIL, "--json"]);
    let attempts = attempts.as_array().unwrap();
    let pair = attempts
        .iter()
        .find(|entry| entry["scope"] == "pair")
        .expect("the pair counter");
    assert_eq!(pair["account"], EMAIL);
    assert_eq!(pair["address"], "127.0.0.1");
    assert_eq!(pair["failures"], 5);
    assert_eq!(pair["apiKey"], key.id.as_str());
    let table = db.ok(&["users", "attempts"]);
    assert!(
        table.contains("127.0.0.1") && table.contains(EMAIL),
        "{table}"
    );

    let unlocked = db.json(&["users", "unlock", "ALICE@example.com", "--json"]);
    assert_eq!(unlocked["result"], "unlocked");
    assert_eq!(unlocked["clearedCounters"], 2);
    login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    let human = db.ok(&["users", "unlock", EMAIL]);
    assert!(
        human.contains("unlocked (0 failed-login counters cleared)"),
        "{human}"
    );
    server.assert_no_secrets(&[&key.key, PASSWORD, WRONG]);
}

#[tokio::test]
async fn throttle_limits_are_settings_of_serve() {
    let db = Db::new();
    let server = Server::start_with_env(
        &db,
        &["--login-failures-per-pair", "2"],
        &[("ASSETPOOL_LOGIN_FAILURES_PER_ACCOUNT", "100")],
    );
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    for _ in 0..2 {
        assert_eq!(login(&server, &key.key, EMAIL, WRONG).await.0, 401);
    }
    let (status, body) = login(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_attempts"))
    );
    let message = assert_clean_failure(&db.run(&["serve", "--login-failures-per-account", "500"]));
    assert!(message.contains("500"), "{message}");
}
