//! Logins under attack, through the real binary on SQLite and PostgreSQL:
//! clients that hang up while their password is being checked, logins racing
//! a password change or a disable, concurrent guesses against the throttle,
//! and guesses from rotating IPv6 addresses of one network.

use crate::helpers::{client, json_of, login, stderr, Db, Key, Server, PASSWORD};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

const EMAIL: &str = "alice@example.com";
const WRONG: &str = "not the password, but long";

crate::on_both_backends! {
    abandoned_logins_stay_bounded_and_are_counted => abandoned_logins;
    logins_racing_a_password_change_or_disable_never_outlive_it => racing_logins;
    concurrent_wrong_passwords_pass_the_pair_limit_at_most => concurrent_guesses;
    guesses_from_one_ipv6_network_share_one_counter => ipv6_network_guesses;
}

/// A production key and a user, made with the command line.
fn key_and_user(db: &Db) -> Key {
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    key
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// CPU time (user + system) the process has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which is in parentheses): utime is the
    // 12th and stime the 13th of them.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The value of an unlabelled metric on /metrics.
async fn metric(server: &Server, name: &str) -> f64 {
    let text = client()
        .get(server.at("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Sends one login for `username` with a wrong password on a fresh
/// connection and closes the connection 15 ms later, without reading;
/// whether it was sent.
async fn login_and_hang_up(address: &str, key: &str, username: &str) -> bool {
    let body = json!({"username": username, "password": WRONG}).to_string();
    let request = format!(
        "POST /api/authentication/login HTTP/1.1\r\nhost: {address}\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
    true
}

/// `connections` clients that each send a login and hang up, again and
/// again for `flood`; returns how many logins were sent.
async fn flood_of_hang_ups(address: &str, key: &str, connections: usize, flood: Duration) -> u64 {
    let until = Instant::now() + flood;
    let clients: Vec<_> = (0..connections)
        .map(|connection| {
            let (address, key) = (address.to_owned(), key.to_owned());
            tokio::spawn(async move {
                let mut sent: u64 = 0;
                while Instant::now() < until {
                    let username = format!("guess{connection}x{sent}@example.com");
                    if login_and_hang_up(&address, &key, &username).await {
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    sent
}

/// For 1.5 s, 40 connections each send a login and close the connection
/// 15 ms later, again and again (the server has 4 hashing workers and a
/// queue of 4). Every attempt is still counted (usage, throttle counters,
/// the pool's refusals); the pool's bound holds, so memory stays near one
/// Argon2 job (19 MiB) per worker; and once the pool's gauge reads 0, no
/// hashing is going on.
async fn abandoned_logins(db: Db) {
    const CONNECTIONS: usize = 40;
    const FLOOD: Duration = Duration::from_millis(1500);
    let key = key_and_user(&db);
    let server = Server::start(
        &db,
        &[
            "--hashing-workers",
            "4",
            "--hashing-queue",
            "4",
            "--login-failures-per-pair",
            "100000",
            "--login-failures-per-address",
            "100000",
        ],
    );
    let address = server.url.trim_start_matches("http://").to_owned();
    let pid = server.pid();
    let resident_before = status_kib(pid, "VmRSS");

    let sent = flood_of_hang_ups(&address, &key.key, CONNECTIONS, FLOOD).await;

    // Once the pool's gauge reads 0, nothing may still be hashing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server, "assetpool_password_hashing_in_flight").await > 0.0 {
        assert!(Instant::now() < deadline, "hashing never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ticks = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy_ms = (cpu_ticks(pid) - ticks) * 10;
    assert!(
        busy_ms < 200,
        "the server used {busy_ms} ms of CPU in the 500 ms after its hashing gauge read 0"
    );
    let peak = status_kib(pid, "VmHWM");
    eprintln!("resident before {resident_before} KiB, peak {peak} KiB");
    assert!(
        peak < resident_before + 250 * 1024,
        "resident memory peaked at {peak} KiB (from {resident_before} KiB): hashing escaped the pool"
    );
    let rejected = metric(&server, "assetpool_password_hashing_rejected_total").await;

    // The owner can still log in, and the server flushes usage on SIGTERM.
    let (status, body) = login(&server, &key.key, EMAIL, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let mut server = server;
    assert!(server.terminate().success(), "{}", server.stderr());

    let usage = db.json(&["keys", "usage", &key.id, "--json"]);
    let totals = &usage["totals"];
    let requests = totals["requests"].as_u64().unwrap();
    let failed = totals["failedLogins"].as_u64().unwrap();
    let attempts = db.json(&["users", "attempts", "--json"]);
    let counted = attempts
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["scope"] == "address")
        .map_or(0, |entry| entry["failures"].as_u64().unwrap());
    eprintln!(
        "sent {sent}: usage {requests} requests, {failed} failed logins; \
         throttle {counted} failures; pool refused {rejected}"
    );
    // A request whose client was gone before the server read it never
    // started (nothing hashed, nothing to count); on a loaded machine that
    // is some of them. Before logins ran in a task of their own, only one
    // to two in a hundred were counted.
    assert!(
        requests > sent / 2,
        "only {requests} of {sent} abandoned logins were counted in usage: {totals}"
    );
    assert_eq!(
        failed, counted,
        "usage and throttle disagree: {totals} {attempts}"
    );
    assert!(
        counted + rejected as u64 > sent / 2,
        "{counted} attempts counted and {rejected} refused of {sent} sent"
    );
}

/// Every token pair a login loop obtained with `password`, concurrently
/// with `change` (a command run on the database).
async fn logins_during(
    server: &Server,
    key: &Key,
    password: &str,
    change: impl FnOnce(),
) -> Vec<(String, String)> {
    const LOOPS: usize = 6;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loops: Vec<_> = (0..LOOPS)
        .map(|_| {
            let (url, key, password, stop) = (
                server.url.clone(),
                key.key.clone(),
                password.to_owned(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let client = client();
                let mut pairs = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let response = client
                        .post(format!("{url}/api/authentication/login"))
                        .header("x-api-key", &key)
                        .json(&json!({"username": EMAIL, "password": password}))
                        .send()
                        .await
                        .expect("login request");
                    if response.status().as_u16() == 200 {
                        let body: Value = response.json().await.unwrap();
                        pairs.push((
                            body["accessToken"].as_str().unwrap().to_owned(),
                            body["refreshToken"].as_str().unwrap().to_owned(),
                        ));
                    }
                }
                pairs
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(change);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut pairs = Vec::new();
    for login_loop in loops {
        pairs.extend(login_loop.await.unwrap());
    }
    pairs
}

/// How many of `pairs` still work a second after the change: an access token
/// accepted, or a refresh token renewed.
async fn still_live(server: &Server, key: &Key, pairs: &[(String, String)]) -> usize {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let client = client();
    let mut live = 0;
    for (access, refresh) in pairs {
        let resource = client
            .get(server.at("/v1/resource"))
            .header("x-api-key", &key.key)
            .header("x-api-token", access)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let renewed = client
            .post(server.at("/api/authentication/refresh"))
            .header("x-api-key", &key.key)
            .json(&json!({"refreshToken": refresh}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if resource == 200 || renewed == 200 {
            live += 1;
        }
    }
    live
}

/// Four rounds of logins racing `users set-password` and `users disable`:
/// no session obtained with the old password (or before the disable) works
/// a second after the change, and the old password never comes back.
async fn racing_logins(db: Db) {
    let key = key_and_user(&db);
    // Stored hashes made with other parameters than the server's are
    // re-hashed at login: the re-hash must never restore an old password.
    // The throttle is not under test here: wrong-password answers after each
    // change must not slow the next round's logins.
    let server = Server::start(
        &db,
        &[
            "--argon2-iterations",
            "3",
            "--login-failures-per-pair",
            "100000",
            "--login-failures-per-address",
            "100000",
        ],
    );
    let passwords = [
        PASSWORD,
        "a second long passphrase",
        "a third long passphrase",
    ];
    let mut survivors = 0;
    let mut obtained = 0;
    for round in 0..2 {
        let (old, new) = (passwords[round], passwords[round + 1]);
        let pairs = logins_during(&server, &key, old, || {
            let output = db.run_stdin(
                &["users", "set-password", EMAIL, "--password-stdin"],
                &format!("{new}\n"),
            );
            assert!(output.status.success(), "{}", stderr(&output));
        })
        .await;
        obtained += pairs.len();
        survivors += still_live(&server, &key, &pairs).await;
        let (status, _) = login(&server, &key.key, EMAIL, old).await;
        assert_eq!(
            status, 401,
            "the old password works again after round {round}"
        );

        let pairs = logins_during(&server, &key, new, || {
            db.ok(&["users", "disable", EMAIL]);
        })
        .await;
        obtained += pairs.len();
        survivors += still_live(&server, &key, &pairs).await;
        db.ok(&["users", "enable", EMAIL]);
    }
    eprintln!("{obtained} sessions obtained before the changes, {survivors} still live after");
    assert!(obtained > 0, "no login succeeded at all");
    assert_eq!(
        survivors, 0,
        "sessions outlived a password change or a disable"
    );
}

/// A hundred wrong passwords for one account from one address at once: the
/// throttle lets exactly its per-pair limit (5) through to the password
/// check; the others get 429 (or 503 while the pool is full), never 401.
async fn concurrent_guesses(db: Db) {
    let key = key_and_user(&db);
    let server = Server::start(&db, &["--hashing-queue", "200"]);
    let guesses: Vec<_> = (0..100)
        .map(|_| {
            let url = server.url.clone();
            let key = key.key.clone();
            tokio::spawn(async move {
                let response = client()
                    .post(format!("{url}/api/authentication/login"))
                    .header("x-api-key", key)
                    .json(&json!({"username": EMAIL, "password": WRONG}))
                    .send()
                    .await
                    .expect("login request");
                response.status().as_u16()
            })
        })
        .collect();
    let mut wrong = 0;
    for guess in guesses {
        match guess.await.unwrap() {
            401 => wrong += 1,
            429 | 503 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(wrong, 5, "{wrong} guesses reached the password check");
    let attempts = json_of(&db.run(&["users", "attempts", EMAIL, "--json"]));
    let pair = attempts
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["scope"] == "pair")
        .unwrap_or_else(|| panic!("no pair counter: {attempts}"));
    assert_eq!(pair["failures"], 5, "{attempts}");
}

/// Behind a trusted proxy, guesses from ever new addresses of one IPv6 /64
/// count as one address: the sixth is refused with 429 for that account.
async fn ipv6_network_guesses(db: Db) {
    let key = key_and_user(&db);
    let server = Server::start(&db, &["--trusted-proxy", "127.0.0.1"]);
    let guess = |host: u32| {
        client()
            .post(server.at("/api/authentication/login"))
            .header("x-api-key", &key.key)
            .header(
                "x-forwarded-for",
                format!("2001:db8:1:2:{host:x}::{host:x}"),
            )
            .json(&json!({"username": EMAIL, "password": WRONG}))
            .send()
    };
    for host in 1..=5 {
        assert_eq!(guess(host).await.unwrap().status().as_u16(), 401);
    }
    let refused = guess(6).await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // Another network is another address.
    let other = client()
        .post(server.at("/api/authentication/login"))
        .header("x-api-key", &key.key)
        .header("x-forwarded-for", "2001:db8:9:9::1")
        .json(&json!({"username": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    let attempts = json_of(&db.run(&["users", "attempts", EMAIL, "--json"]));
    assert!(
        attempts
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["scope"] == "pair" && entry["address"] == "2001:db8:1:2::/64"),
        "{attempts}"
    );
}
