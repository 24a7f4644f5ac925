//! Scopes through the real binary: `keys create|update --scope S`
//! (repeatable) and `--scopes none`, `users create --scope S` and `users
//! update EMAIL --scope S | --scopes none`, the JSON and human output, clean
//! one-line refusals, `serve --route-scope` (flag and config file, bad rules
//! refused at start), and a `keys update` narrowing reaching two servers on
//! one database within a second.

use crate::helpers::{assert_clean_failure, json_of, login_ok, stdout, Db, Key, Server, PASSWORD};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";

fn create_key(db: &Db, extra: &[&str]) -> Value {
    let mut args = vec![
        "keys", "create", "--name", "orders", "--env", "prod", "--json",
    ];
    args.extend_from_slice(extra);
    db.json(&args)
}

fn create_user(db: &Db, email: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "users",
        "create",
        "--email",
        email,
        "--password-stdin",
        "--json",
    ];
    args.extend_from_slice(extra);
    json_of(&db.run_stdin(&args, &format!("{PASSWORD}\n")))
}

#[test]
fn keys_get_and_change_scopes() {
    let db = Db::new();
    let created = create_key(
        &db,
        &["--scope", "orders:write", "--scope", "orders:read reports"],
    );
    assert_eq!(
        created["scopes"],
        json!(["orders:read", "orders:write", "reports"])
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        db.show_key(&id)["scopes"],
        json!(["orders:read", "orders:write", "reports"])
    );
    let updated = db.json(&["keys", "update", &id, "--scope", "orders:read", "--json"]);
    assert_eq!(updated["scopes"], json!(["orders:read"]), "replaced");
    let renamed = db.json(&["keys", "update", &id, "--name", "renamed", "--json"]);
    assert_eq!(renamed["scopes"], json!(["orders:read"]), "kept");
    let listed = db.json(&["keys", "list", "--json"]);
    assert_eq!(listed[0]["scopes"], json!(["orders:read"]));
    let human = db.ok(&["keys", "show", &id]);
    assert!(human.contains("scopes:       orders:read"), "{human}");
    let cleared = db.json(&["keys", "update", &id, "--scopes", "none", "--json"]);
    assert!(cleared["scopes"].is_null(), "{cleared}");
    let human = db.ok(&["keys", "show", &id]);
    assert!(human.contains("scopes:       (unrestricted)"), "{human}");
    let human = db.ok(&[
        "keys", "create", "--name", "x", "--env", "prod", "--scope", "a",
    ]);
    assert!(human.contains("scopes:       a"), "{human}");
    let table = db.ok(&["keys", "list"]);
    assert!(table.lines().next().unwrap().contains("SCOPES"), "{table}");
    // A rotated key's successor keeps the scopes.
    db.ok(&["keys", "update", &id, "--scope", "orders:read"]);
    let successor = db.json(&["keys", "rotate", &id, "--json"]);
    assert_eq!(successor["scopes"], json!(["orders:read"]));

    let audit = db.json(&["audit", "list", "--json"]);
    let updates: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "key.update" && entry["target"] == id.as_str())
        .collect();
    assert!(
        updates
            .iter()
            .any(|entry| entry["detail"]["scopes"] == json!(["orders:read"])),
        "{audit}"
    );
}

#[test]
fn bad_scope_options_fail_with_one_line() {
    let db = Db::new();
    let key = db.create_key("k", "prod");
    for args in [
        vec![
            "keys", "create", "--name", "k", "--env", "prod", "--scope", "Orders",
        ],
        vec![
            "keys", "create", "--name", "k", "--env", "prod", "--scope", "a/b",
        ],
        vec![
            "keys", "create", "--name", "k", "--env", "prod", "--scope", "",
        ],
        vec!["keys", "update", &key.id, "--scopes", "all"],
        vec![
            "keys", "update", &key.id, "--scope", "a", "--scopes", "none",
        ],
        vec!["keys", "update", "key_unknown", "--scope", "a"],
        vec!["users", "update", "nobody@example.com", "--scope", "a"],
        vec!["users", "update", "nobody@example.com"],
    ] {
        assert_clean_failure(&db.run(&args));
    }
    let many: Vec<String> = (0..33).map(|index| format!("s{index}")).collect();
    let joined = many.join(" ");
    let line = assert_clean_failure(&db.run(&[
        "keys", "create", "--name", "k", "--env", "prod", "--scope", &joined,
    ]));
    assert!(line.contains("at most 32"), "{line}");
    let line = assert_clean_failure(&db.run_stdin(
        &[
            "users",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
            "--scope",
            "Bad",
        ],
        &format!("{PASSWORD}\n"),
    ));
    assert!(line.contains("a-z"), "{line}");
    // Nothing was created by the refused commands.
    assert_eq!(
        db.json(&["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        db.json(&["users", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn users_get_and_change_scopes() {
    let db = Db::new();
    let created = create_user(&db, EMAIL, &["--scope", "reports", "--scope", "audit"]);
    assert_eq!(created["scopes"], json!(["audit", "reports"]));
    let updated = db.json(&["users", "update", EMAIL, "--scope", "reports", "--json"]);
    assert_eq!(updated["scopes"], json!(["reports"]));
    assert_eq!(updated["email"], EMAIL);
    let listed = db.json(&["users", "list", "--json"]);
    assert_eq!(listed[0]["scopes"], json!(["reports"]));
    let human = db.ok(&["users", "update", "ALICE@example.com", "--scopes", "none"]);
    assert!(human.contains("scopes: (unrestricted)"), "{human}");
    let listed = db.json(&["users", "list", "--json"]);
    assert!(listed[0]["scopes"].is_null());
    let unrestricted = create_user(&db, "bob@example.com", &[]);
    assert!(unrestricted["scopes"].is_null());
    let audit = db.json(&["audit", "list", "--json"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["action"] == "user.update"
                && entry["target"] == EMAIL
                && entry["detail"]["scopes"] == json!(["reports"])),
        "{audit}"
    );
}

#[test]
fn bad_route_scopes_stop_the_server_with_one_line() {
    let db = Db::new();
    let upstream = ["--upstream", "http://127.0.0.1:9"];
    for rule in [
        "GET /orders",
        "GET orders=a",
        "G3T /orders=a",
        "GET /orders=Orders",
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--route-scope", rule];
        args.extend_from_slice(&upstream);
        let line = assert_clean_failure(&db.run(&args));
        assert!(line.contains("route scope"), "{line}");
    }
    let twice = db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:9",
        "--route-scope",
        "GET /a=x",
        "--route-scope",
        "get /A=y",
    ]);
    assert!(assert_clean_failure(&twice).contains("same method"));
    let without_upstream = db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--route-scope",
        "GET /orders=orders:read",
    ]);
    assert!(assert_clean_failure(&without_upstream).contains("needs --upstream"));
    let config = db.path().join("bad.toml");
    std::fs::write(
        &config,
        "upstream = \"http://127.0.0.1:9\"\nroute-scope = [\"GET /orders\"]\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let line =
        assert_clean_failure(&db.run(&["serve", "--listen", "127.0.0.1:0", "--config", &config]));
    assert!(line.contains("route scope"), "{line}");
}

/// An upstream answering every request with 200 and the scopes it was told.
async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        headers.get("x-assetpool-scopes").map_or_else(
            || "(none)".to_owned(),
            |value| value.to_str().unwrap_or_default().to_owned(),
        )
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

async fn status_of(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    key: &Key,
    token: &str,
) -> (u16, String) {
    let response = client
        .request(method, url)
        .header("x-api-key", &key.key)
        .header("x-api-token", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn route_scopes_from_the_config_file_guard_the_upstream() {
    let db = Db::new();
    let upstream = start_upstream().await;
    let config = db.path().join("assetpool.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{upstream}\"\nroute-scope = [\"GET /orders=orders:read\", \"* /orders=orders:write\"]\n"
        ),
    )
    .unwrap();
    let key = Key::from_json(&create_key(&db, &["--scope", "orders:read"]));
    db.create_user(EMAIL, PASSWORD);
    let config = config.display().to_string();
    let server = Server::start(&db, &["--config", &config]);
    let token = login_ok(&server, &key.key, EMAIL, PASSWORD).await.access;
    let client = reqwest::Client::new();
    let url = server.at("/orders/7");
    assert_eq!(
        status_of(&client, &url, reqwest::Method::GET, &key, &token).await,
        (200, "orders:read".to_owned())
    );
    let (status, body) = status_of(&client, &url, reqwest::Method::PUT, &key, &token).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("insufficient_scope"), "{body}");
    // The environment replaces the file's rules, and the flag both.
    drop(server);
    let server = Server::start_with_env(
        &db,
        &["--config", &config],
        &[(
            "ASSETPOOL_ROUTE_SCOPES",
            "* /orders=orders:admin,GET /other=x",
        )],
    );
    let (status, _) = status_of(
        &client,
        &server.at("/orders/7"),
        reqwest::Method::GET,
        &key,
        &token,
    )
    .await;
    assert_eq!(status, 403);
    drop(server);
    let server = Server::start_with_env(
        &db,
        &[
            "--config",
            &config,
            "--route-scope",
            "* /orders=orders:read",
        ],
        &[("ASSETPOOL_ROUTE_SCOPES", "* /orders=orders:admin")],
    );
    let (status, _) = status_of(
        &client,
        &server.at("/orders/7"),
        reqwest::Method::PUT,
        &key,
        &token,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn narrowing_a_key_on_the_command_line_reaches_two_servers_within_a_second() {
    let Some(db) = Db::postgres("narrowing_a_key_reaches_two_servers").await else {
        return;
    };
    let key = Key::from_json(&create_key(&db, &["--scope", "orders:read orders:write"]));
    db.create_user(EMAIL, PASSWORD);
    let nodes = [Server::start(&db, &[]), Server::start(&db, &[])];
    let tokens = login_ok(&nodes[0], &key.key, EMAIL, PASSWORD).await;
    assert_eq!(tokens.body["scope"], "orders:read orders:write");
    let client = reqwest::Client::new();
    let check = |node: &Server| node.at("/auth/verify?scope=orders:write");
    for node in &nodes {
        let (status, _) = status_of(
            &client,
            &check(node),
            reqwest::Method::GET,
            &key,
            &tokens.access,
        )
        .await;
        assert_eq!(status, 200);
    }
    let since = Instant::now();
    let output = db.run(&["keys", "update", &key.id, "--scope", "orders:read"]);
    assert!(output.status.success(), "{}", stdout(&output));
    for node in &nodes {
        loop {
            let (status, body) = status_of(
                &client,
                &check(node),
                reqwest::Method::GET,
                &key,
                &tokens.access,
            )
            .await;
            if status == 403 {
                assert!(body.contains("insufficient_scope"), "{body}");
                break;
            }
            assert_eq!(status, 200);
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "the narrowing never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let took = since.elapsed();
    eprintln!("keys update --scope refused on both servers after {took:?}");
    assert!(
        took < Duration::from_secs(1) + Duration::from_millis(500),
        "{took:?}"
    );
    for node in &nodes {
        let (status, _) = status_of(
            &client,
            &node.at("/auth/verify?scope=orders:read"),
            reqwest::Method::GET,
            &key,
            &tokens.access,
        )
        .await;
        assert_eq!(status, 200);
        node.assert_no_secrets(&[&key.key, PASSWORD, &tokens.access, &tokens.refresh]);
    }
}

#[tokio::test]
async fn the_login_command_asks_for_scopes() {
    let db = Db::new();
    let key = Key::from_json(&create_key(&db, &["--scope", "orders:read orders:write"]));
    db.create_user(EMAIL, PASSWORD);
    let server = Server::start(&db, &[]);
    let login = |scope: &str| {
        let mut command = crate::helpers::command(db.path());
        command.args([
            "login",
            "--url",
            &server.url,
            "--username",
            EMAIL,
            "--password-stdin",
            "--scope",
            scope,
        ]);
        command.env("ASSETPOOL_API_KEY", &key.key);
        crate::helpers::output(command, Some(&format!("{PASSWORD}\n")))
    };
    let granted = json_of(&login("orders:read"));
    assert_eq!(granted["scope"], "orders:read");
    let line = assert_clean_failure(&login("admin"));
    assert!(line.contains("invalid_scope"), "{line}");
}
