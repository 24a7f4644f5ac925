//! Several `assetpool serve` processes on one PostgreSQL schema: sessions,
//! revocations and signing keys are shared, and every change made on one node
//! or by the command line reaches every node within one second (contract §5).
//!
//! Each test skips (with a line on stderr) when PostgreSQL is unreachable,
//! unless `ASSETPOOL_REQUIRE_POSTGRES=1`.

use crate::helpers::{
    assert_clean_failure, assert_resource_401, assert_resource_ok, command, get_json, json_of, kid,
    login_ok, stderr, Db, Key, Server, PASSWORD,
};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";
const ONE_SECOND: Duration = Duration::from_secs(1);
/// How long to keep polling before declaring that a change never arrived.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Starts three servers on `db` at the same time, as a deployment would.
fn three_nodes(db: &Db) -> [Server; 3] {
    std::thread::scope(|scope| {
        let starting = [(); 3].map(|()| scope.spawn(|| Server::start(db, &[])));
        starting.map(|handle| handle.join().expect("a server starts"))
    })
}

/// A production key and a user, made with the command line.
fn key_and_user(db: &Db) -> Key {
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    key
}

/// One client for polling: no per-request client set-up in the measurements.
fn poller() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET /v1/resource: (status, error code or "").
async fn check(client: &reqwest::Client, node: &Server, key: &str, token: &str) -> (u16, String) {
    let response = client
        .get(node.at("/v1/resource"))
        .header("x-api-key", key)
        .header("x-api-token", token)
        .send()
        .await
        .expect("resource request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Polls GET /v1/resource on each of `nodes` every ~5 ms until each answers
/// 401 `code`; returns the time from `since` at which the last one first did.
/// Until then a node must answer 200; afterwards it must keep refusing. Gives
/// up (panics) 5 s after `since`.
async fn until_refused<'a>(
    nodes: impl IntoIterator<Item = &'a Server>,
    key: &str,
    token: &str,
    code: &str,
    since: Instant,
) -> Duration {
    let nodes: Vec<&Server> = nodes.into_iter().collect();
    let client = poller();
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    let mut last = Duration::ZERO;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for index in pending {
            let started = since.elapsed();
            let (status, error) = check(&client, nodes[index], key, token).await;
            if status == 401 && error == code {
                last = last.max(since.elapsed());
                continue;
            }
            assert_eq!(
                status,
                200,
                "node {} answered {status} {error} (expected 200, then 401 {code})",
                index + 1
            );
            assert!(
                started < GIVE_UP,
                "node {} still lets the request in {started:?} after the change (expected 401 {code})",
                index + 1
            );
            still.push(index);
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for (index, node) in nodes.iter().enumerate() {
        let (status, error) = check(&client, node, key, token).await;
        assert_eq!(
            (status, error.as_str()),
            (401, code),
            "node {} let the request in again",
            index + 1
        );
    }
    last
}

/// POST /api/authentication/logout: the status.
async fn logout(client: &reqwest::Client, node: &Server, key: &str, token: &str) -> u16 {
    client
        .post(node.at("/api/authentication/logout"))
        .header("x-api-key", key)
        .header("x-api-token", token)
        .send()
        .await
        .expect("logout request")
        .status()
        .as_u16()
}

/// POST /api/authentication/refresh: (status, body).
async fn refresh(client: &reqwest::Client, url: &str, key: &str, token: &str) -> (u16, Value) {
    let response = client
        .post(url)
        .header("x-api-key", key)
        .json(&json!({ "refreshToken": token }))
        .send()
        .await
        .expect("refresh request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn assert_ok_everywhere(nodes: &[Server], key: &str, token: &str) {
    for node in nodes {
        assert_resource_ok(node, key, token).await;
    }
}

#[tokio::test]
async fn three_nodes_share_sessions() {
    let Some(db) = Db::postgres("three_nodes_share_sessions").await else {
        return;
    };
    let nodes = three_nodes(&db);
    let key = key_and_user(&db);
    let tokens = login_ok(&nodes[0], &key.key, EMAIL, PASSWORD).await;
    for node in &nodes[1..] {
        let body = assert_resource_ok(node, &key.key, &tokens.access).await;
        assert_eq!(body["user"]["email"], EMAIL);
        assert_eq!(body["apiKey"]["id"], key.id.as_str());
    }

    let since = Instant::now();
    let status = logout(&poller(), &nodes[1], &key.key, &tokens.access).await;
    assert_eq!(status, 204, "logout on node 2");
    let took = until_refused(&nodes, &key.key, &tokens.access, "token_revoked", since).await;
    eprintln!("logout on node 2 refused on all three nodes after {took:?}");
    assert!(
        took < ONE_SECOND,
        "logout took {took:?} to reach every node"
    );
    // The session's refresh token stopped working too, on every node.
    for node in &nodes {
        let url = node.at("/api/authentication/refresh");
        let (status, body) = refresh(&poller(), &url, &key.key, &tokens.refresh).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_refresh_token"))
        );
    }
    for node in &nodes {
        node.assert_no_secrets(&[&key.key, PASSWORD, &tokens.access, &tokens.refresh]);
    }
}

#[tokio::test]
async fn cli_revocations_reach_every_node_within_a_second() {
    let Some(db) = Db::postgres("cli_revocations_reach_every_node").await else {
        return;
    };
    let nodes = three_nodes(&db);
    let key = key_and_user(&db);
    let second = db.create_key("second", "prod");
    assert_ne!(second.application, key.application);
    let one = login_ok(&nodes[0], &key.key, EMAIL, PASSWORD).await;
    let two = login_ok(&nodes[2], &second.key, EMAIL, PASSWORD).await;
    // Every node has both keys and both tokens cached.
    assert_ok_everywhere(&nodes, &key.key, &one.access).await;
    assert_ok_everywhere(&nodes, &second.key, &two.access).await;

    let since = Instant::now();
    db.ok(&["keys", "revoke", &key.id, "--reason", "multi-node test"]);
    let took = until_refused(&nodes, &key.key, &one.access, "api_key_revoked", since).await;
    eprintln!("keys revoke refused on all three nodes after {took:?}");
    assert!(took < ONE_SECOND, "keys revoke took {took:?}");
    // The other application's key and token are untouched.
    assert_ok_everywhere(&nodes, &second.key, &two.access).await;

    let since = Instant::now();
    db.ok(&["users", "disable", EMAIL]);
    let took = until_refused(&nodes, &second.key, &two.access, "token_revoked", since).await;
    eprintln!("users disable refused on all three nodes after {took:?}");
    assert!(took < ONE_SECOND, "users disable took {took:?}");
    for node in &nodes {
        let (status, body) = crate::helpers::login(node, &second.key, EMAIL, PASSWORD).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_credentials"))
        );
    }
}

#[tokio::test]
async fn revocation_propagation_median_and_worst_of_20() {
    let Some(db) = Db::postgres("revocation_propagation_of_20").await else {
        return;
    };
    let nodes = three_nodes(&db);
    let key = key_and_user(&db);
    let client = poller();
    let mut times = Vec::new();
    for round in 0..20 {
        let login_node = &nodes[round % 3];
        let logout_node = (round + 1) % 3;
        let tokens = login_ok(login_node, &key.key, EMAIL, PASSWORD).await;
        // Every node has verified (and cached) the token before it is revoked.
        assert_ok_everywhere(&nodes, &key.key, &tokens.access).await;
        let others: Vec<&Server> = (0..3)
            .filter(|index| *index != logout_node)
            .map(|index| &nodes[index])
            .collect();
        // Measured from just before the logout request is sent.
        let since = Instant::now();
        let status = logout(&client, &nodes[logout_node], &key.key, &tokens.access).await;
        assert_eq!(status, 204, "logout in round {round}");
        let took = until_refused(others, &key.key, &tokens.access, "token_revoked", since).await;
        times.push(took);
    }
    times.sort();
    let median = (times[9] + times[10]) / 2;
    let worst = times[19];
    let report = format!(
        "logout propagation to the two other nodes over 20 rounds: median {median:?}, worst {worst:?} (all: {times:?})"
    );
    eprintln!("{report}");
    println!("{report}");
    assert!(worst < ONE_SECOND, "{report}");
}

#[tokio::test]
async fn signing_key_rotation_reaches_every_node() {
    let Some(db) = Db::postgres("signing_key_rotation_reaches_every_node").await else {
        return;
    };
    let nodes = three_nodes(&db);
    let key = key_and_user(&db);
    let before = login_ok(&nodes[1], &key.key, EMAIL, PASSWORD).await;
    let old_kid = kid(&before.access);
    assert_ok_everywhere(&nodes, &key.key, &before.access).await;

    let rotated = db.json(&["signing-keys", "rotate", "--json"]);
    let since = Instant::now();
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);

    // On every node, a login started a second or more after the rotation
    // must be signed with the new key.
    let fresh_on = |node: &'static str, server: &Server| {
        let (url, key, new_kid) = (server.url.clone(), key.key.clone(), new_kid.clone());
        async move {
            loop {
                let started = since.elapsed();
                let tokens = login_at(&url, &key).await;
                if kid(&tokens) == new_kid {
                    return tokens;
                }
                assert!(
                    started < ONE_SECOND,
                    "{node}: a login {started:?} after the rotation was signed with {}",
                    kid(&tokens)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (first, second, third) = tokio::join!(
        fresh_on("node 1", &nodes[0]),
        fresh_on("node 2", &nodes[1]),
        fresh_on("node 3", &nodes[2])
    );
    eprintln!(
        "every node signs with the new key {:?} after the rotation",
        since.elapsed()
    );
    for token in [&first, &second, &third] {
        assert_ok_everywhere(&nodes, &key.key, token).await;
    }
    // The token issued before the rotation keeps working everywhere.
    assert_ok_everywhere(&nodes, &key.key, &before.access).await;
    for (index, node) in nodes.iter().enumerate() {
        let jwks = get_json(node, "/.well-known/jwks.json").await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|jwk| jwk["kid"].as_str().expect("a kid"))
            .collect();
        assert!(
            kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
            "node {}: the JWKS lists {kids:?}, not both {old_kid} and {new_kid}",
            index + 1
        );
    }
}

/// A login (that must succeed) at a server's base URL: the access token.
async fn login_at(url: &str, key: &str) -> String {
    let response = poller()
        .post(format!("{url}/api/authentication/login"))
        .header("x-api-key", key)
        .json(&json!({"username": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .expect("login request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "login at {url}: {body}");
    body["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_owned()
}

#[tokio::test]
async fn concurrent_refresh_across_nodes_is_honoured_once() {
    let Some(db) = Db::postgres("concurrent_refresh_across_nodes").await else {
        return;
    };
    let nodes = three_nodes(&db);
    let key = key_and_user(&db);
    let tokens = login_ok(&nodes[0], &key.key, EMAIL, PASSWORD).await;
    assert_ok_everywhere(&nodes, &key.key, &tokens.access).await;

    let client = poller();
    let mut tasks = tokio::task::JoinSet::new();
    for attempt in 0..50 {
        let url = nodes[attempt % 3].at("/api/authentication/refresh");
        let (client, key, token) = (client.clone(), key.key.clone(), tokens.refresh.clone());
        tasks.spawn(async move { refresh(&client, &url, &key, &token).await });
    }
    let answers = tasks.join_all().await;
    let since = Instant::now();
    let successes: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        successes.len(),
        1,
        "not exactly one refresh honoured: {answers:?}"
    );
    let refused = answers
        .iter()
        .filter(|(status, body)| *status == 401 && body["error"] == "invalid_refresh_token")
        .count();
    assert_eq!(refused, 49, "{answers:?}");

    // Reuse revoked the whole session, the refreshed token included.
    let access = successes[0]["accessToken"].as_str().expect("accessToken");
    let took = until_refused(&nodes, &key.key, access, "token_revoked", since).await;
    eprintln!("the refreshed token is refused on all three nodes after {took:?}");
    assert!(
        took < ONE_SECOND,
        "reuse took {took:?} to revoke the session everywhere"
    );
    for node in &nodes {
        assert_resource_401(node, &key.key, &tokens.access, "token_revoked").await;
    }
    let successor = successes[0]["refreshToken"].as_str().expect("refreshToken");
    let (status, body) = refresh(
        &client,
        &nodes[2].at("/api/authentication/refresh"),
        &key.key,
        successor,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
}

#[tokio::test]
async fn concurrent_key_rotation_leaves_one_successor() {
    let Some(db) = Db::postgres("concurrent_key_rotation").await else {
        return;
    };
    let old = db.create_key("rotated", "prod");
    let other = db.create_key("other application", "prod");
    let spawn = || {
        let mut rotate = db.cmd(&["keys", "rotate", &old.id, "--json"]);
        rotate.stdout(Stdio::piped()).stderr(Stdio::piped());
        rotate.spawn().expect("keys rotate starts")
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [first, second].map(|child| child.wait_with_output().expect("keys rotate ends"));
    let (won, lost): (Vec<_>, Vec<_>) = outputs.iter().partition(|output| output.status.success());
    assert_eq!(
        (won.len(), lost.len()),
        (1, 1),
        "not exactly one rotation succeeded: {:?}",
        outputs
            .iter()
            .map(|output| (output.status, stderr(output)))
            .collect::<Vec<_>>()
    );
    let successor = Key::from_json(&json_of(won[0]));
    assert_eq!(successor.application, old.application);
    assert_ne!(successor.id, old.id);
    let line = assert_clean_failure(lost[0]);
    assert!(
        !line.contains(&old.key) && !line.contains(&successor.key),
        "{line}"
    );

    let keys = db.json(&["keys", "list", "--json"]);
    let keys = keys.as_array().expect("an array");
    let in_application: Vec<&Value> = keys
        .iter()
        .filter(|key| key["application"] == old.application.as_str())
        .collect();
    let successors: Vec<&Value> = in_application
        .iter()
        .copied()
        .filter(|key| key["id"] != old.id.as_str())
        .collect();
    assert_eq!(successors.len(), 1, "successors: {successors:?}");
    assert_eq!(successors[0]["id"], successor.id.as_str());
    assert_eq!(successors[0]["status"], "active");
    assert_eq!(in_application.len(), 2, "{keys:?}");
    assert_eq!(keys.len(), 3, "another key appeared: {keys:?}");
    assert!(keys.iter().any(|key| key["id"] == other.id.as_str()));

    let shown = db.show_key(&old.id);
    assert_eq!(shown["status"], "rotating", "{shown}");
    assert_eq!(shown["successor"], successor.id.as_str(), "{shown}");
}

#[test]
fn unreachable_postgres_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut serve = command(dir.path());
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--database", "postgres://postgres@127.0.0.1:1/test"])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = serve.spawn().expect("the server starts");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let started = Instant::now();
    let Ok(output) = receiver.recv_timeout(Duration::from_secs(15)) else {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("assetpool serve still runs 15 s after start with an unreachable database");
    };
    let output = output.expect("the server ends");
    eprintln!("unreachable PostgreSQL: exit after {:?}", started.elapsed());
    let line = assert_clean_failure(&output);
    assert!(
        line.contains("127.0.0.1:1"),
        "the error does not name the address: {line}"
    );
}
