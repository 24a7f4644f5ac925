//! `serve --demo`, the `login` client command, and signing-key rotation on a
//! running server.

use crate::helpers::{
    assert_clean_failure, assert_resource_ok, command, get_json, json_of, kid, login_ok, output,
    stderr, stdout, Db, Server, PASSWORD,
};
use std::process::Output;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";

/// The value after `label` on the first line that contains it.
fn value_after(lines: &[String], label: &str) -> String {
    let line = lines
        .iter()
        .find(|line| line.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {lines:#?}"));
    let (_, value) = line.split_once(label).unwrap();
    value.trim().to_owned()
}

#[tokio::test]
async fn demo_prints_working_credentials_and_curl_lines() {
    let db = Db::new();
    let server = Server::start(&db, &["--demo"]);
    let lines = server.stdout_lines();
    let key = value_after(&lines, "API key:");
    let username = value_after(&lines, "username:");
    let password = value_after(&lines, "password:");
    assert!(key.starts_with("apk_prod_"), "{key}");
    crate::helpers::assert_key_format(&key, "prod");
    assert_eq!(username, "demo@example.com");
    assert!(password.len() >= 12, "the demo password is too short");
    let curl: Vec<&String> = lines.iter().filter(|line| line.contains("curl")).collect();
    assert!(
        curl.iter()
            .any(|line| line.contains("/api/authentication/login")),
        "no curl line for login: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("/v1/resource") && line.contains(&server.url)),
        "no curl line for /v1/resource: {lines:#?}"
    );
    assert!(
        lines.iter().any(|line| line.contains(&key))
            && lines.iter().any(|line| line.contains(&password)),
        "the curl lines do not carry the credentials"
    );

    let tokens = login_ok(&server, &key, &username, &password).await;
    let body = assert_resource_ok(&server, &key, &tokens.access).await;
    assert_eq!(body["user"]["email"], "demo@example.com");
    server.assert_no_secrets(&[&key, &password, &tokens.access, &tokens.refresh]);
    drop(server);

    // On a database that is no longer empty, --demo creates nothing more.
    let again = Server::start(&db, &["--demo"]);
    assert!(!again
        .stdout_lines()
        .iter()
        .any(|line| line.contains("API key:")));
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
        1
    );
}

/// How `assetpool login` gets the API key.
enum KeyFrom<'a> {
    Flag(&'a str),
    Env(&'a str),
    /// `ASSETPOOL_API_KEY_FILE` naming this file.
    File(&'a std::path::Path),
    /// `--api-key -`: the key on the first line of stdin, the password on the second.
    Stdin(&'a str),
    Nowhere,
}

/// `assetpool login --url URL [--api-key KEY] --username EMAIL --password-stdin`.
fn login_command(db: &Db, url: &str, key: &KeyFrom<'_>, password: &str) -> Output {
    let mut login = command(db.path());
    login.args([
        "login",
        "--url",
        url,
        "--username",
        EMAIL,
        "--password-stdin",
    ]);
    match key {
        KeyFrom::Flag(key) => {
            login.args(["--api-key", key]);
        }
        KeyFrom::Env(key) => {
            login.env("ASSETPOOL_API_KEY", key);
        }
        KeyFrom::File(path) => {
            login.env("ASSETPOOL_API_KEY_FILE", path);
        }
        KeyFrom::Stdin(key) => {
            login.args(["--api-key", "-"]);
            return output(login, Some(&format!("{key}\n{password}\n")));
        }
        KeyFrom::Nowhere => {}
    }
    output(login, Some(&format!("{password}\n")))
}

#[tokio::test]
async fn login_command_prints_the_token_response() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);

    let run = login_command(&db, &server.url, &KeyFrom::Flag(&key.key), PASSWORD);
    assert!(!stderr(&run).contains(PASSWORD));
    let answer = json_of(&run);
    assert_eq!(
        crate::helpers::fields(&answer),
        ["accessToken", "expiresIn", "refreshToken", "tokenType"]
    );
    assert_eq!(answer["expiresIn"], 86400);
    assert_eq!(answer["tokenType"], "Bearer");
    let access = answer["accessToken"].as_str().unwrap();
    let refresh = answer["refreshToken"].as_str().unwrap();
    assert!(!refresh.is_empty());
    assert_resource_ok(&server, &key.key, access).await;
    server.assert_no_secrets(&[&key.key, PASSWORD, access, refresh]);
}

#[tokio::test]
async fn login_command_takes_the_api_key_from_the_environment() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);

    // The URL may end with a slash.
    let url = format!("{}/", server.url);
    let answer = json_of(&login_command(&db, &url, &KeyFrom::Env(&key.key), PASSWORD));
    assert_eq!(answer["expiresIn"], 86400);
    assert_eq!(answer["tokenType"], "Bearer");
    let access = answer["accessToken"].as_str().unwrap();
    assert_resource_ok(&server, &key.key, access).await;

    // Without any API key.
    let run = login_command(&db, &server.url, &KeyFrom::Nowhere, PASSWORD);
    assert!(
        !run.status.success(),
        "login without an API key: {}",
        stdout(&run)
    );
    assert!(stdout(&run).trim().is_empty());
    server.assert_no_secrets(&[&key.key, PASSWORD, access]);
}

#[tokio::test]
async fn login_command_fails_with_one_line() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let wrong = "not the right password";

    let line = assert_clean_failure(&login_command(
        &db,
        &server.url,
        &KeyFrom::Env(&key.key),
        wrong,
    ));
    assert!(line.contains("invalid_credentials"), "{line}");
    assert!(!line.contains(wrong) && !line.contains(&key.key), "{line}");

    // A bad API key.
    // The last character changed (to one it is not), so the checksum fails.
    let last = if key.key.ends_with('x') { 'y' } else { 'x' };
    let bad = format!("{}{last}", &key.key[..key.key.len() - 1]);
    let line = assert_clean_failure(&login_command(
        &db,
        &server.url,
        &KeyFrom::Stdin(&bad),
        PASSWORD,
    ));
    assert!(line.contains("invalid_api_key"), "{line}");

    // No server there.
    let line = assert_clean_failure(&login_command(
        &db,
        "http://127.0.0.1:9",
        &KeyFrom::Env(&key.key),
        PASSWORD,
    ));
    assert!(
        !line.contains(&key.key) && !line.contains(PASSWORD),
        "{line}"
    );
    server.assert_no_secrets(&[&key.key, PASSWORD, wrong]);
}

/// Verifies `token` with a stock JWT library, the JWKS and the published issuer.
async fn verify_with_jwks(server: &Server, jwks: &serde_json::Value, token: &str) {
    let metadata = get_json(server, "/.well-known/oauth-authorization-server").await;
    let issuer = metadata["issuer"].as_str().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|jwk| jwk["kid"] == kid(token).as_str())
        .unwrap_or_else(|| panic!("{} not in the JWKS", kid(token)));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["assetpool"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
        .unwrap_or_else(|error| panic!("the token does not verify with the JWKS: {error}"));
}

#[tokio::test]
async fn signing_key_rotation_while_serving_logs_nobody_out() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let before = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
    let old_kid = kid(&before.access);
    let header = jsonwebtoken::decode_header(&before.access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));

    let listed = db.json(&["signing-keys", "list", "--json"]);
    let active: Vec<&serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["status"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{listed}");
    assert_eq!(
        active[0]["kid"],
        old_kid.as_str(),
        "the server signs with another key than the active one"
    );

    let rotated = db.json(&["signing-keys", "rotate", "--json"]);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotated["status"], "active");

    // New tokens are signed with the new key (allow the change feed one second).
    let rotated_at = Instant::now();
    let after = loop {
        let tokens = login_ok(&server, &key.key, EMAIL, PASSWORD).await;
        if kid(&tokens.access) == new_kid {
            break tokens;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(1),
            "tokens still signed with {} one second after the rotation",
            kid(&tokens.access)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_resource_ok(&server, &key.key, &before.access).await;
    assert_resource_ok(&server, &key.key, &after.access).await;
    let jwks = get_json(&server, "/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|jwk| jwk["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()),
        "old kid missing from the JWKS: {kids:?}"
    );
    assert!(
        kids.contains(&new_kid.as_str()),
        "new kid missing from the JWKS: {kids:?}"
    );
    // Both tokens verify with a stock JWT library and the published keys.
    verify_with_jwks(&server, &jwks, &before.access).await;
    verify_with_jwks(&server, &jwks, &after.access).await;

    let listed = db.json(&["signing-keys", "list", "--json"]);
    let old = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == old_kid.as_str())
        .unwrap();
    assert_eq!(old["status"], "retired");
    assert!(old["retiresAt"].is_string());

    server.assert_no_secrets(&[
        &key.key,
        PASSWORD,
        &before.access,
        &before.refresh,
        &after.access,
        &after.refresh,
    ]);
}

/// The API key of `login` comes from a file (`ASSETPOOL_API_KEY_FILE`) or
/// the first line of stdin (`--api-key -`) without a word; typed as an
/// argument, where other users can read it, it still works, with a warning
/// that never shows it.
#[tokio::test]
async fn login_takes_the_api_key_from_a_file_or_stdin_and_warns_about_argv() {
    let db = Db::new();
    let server = Server::start(&db, &[]);
    let key = db.create_key("shop", "prod");
    db.create_user(EMAIL, PASSWORD);
    let key_file = db.path().join("api-key");
    std::fs::write(&key_file, format!("{}\n", key.key)).unwrap();

    for (from, warned) in [
        (KeyFrom::File(&key_file), false),
        (KeyFrom::Stdin(&key.key), false),
        (KeyFrom::Env(&key.key), false),
        (KeyFrom::Flag(&key.key), true),
    ] {
        let run = login_command(&db, &server.url, &from, PASSWORD);
        let answer = json_of(&run);
        assert_eq!(answer["tokenType"], "Bearer");
        let errors = stderr(&run);
        assert_eq!(
            errors.contains("warning: --api-key on the command line"),
            warned,
            "{errors}"
        );
        assert!(!errors.contains(&key.key), "{errors}");
        if warned {
            assert!(errors.contains("ASSETPOOL_API_KEY_FILE"), "{errors}");
        }
    }
    // A file that is not there: one line naming the variable, not the key.
    let missing = db.path().join("missing");
    let line = assert_clean_failure(&login_command(
        &db,
        &server.url,
        &KeyFrom::File(&missing),
        PASSWORD,
    ));
    assert!(line.contains("ASSETPOOL_API_KEY_FILE"), "{line}");
    let line = assert_clean_failure(&login_command(
        &db,
        &server.url,
        &KeyFrom::Nowhere,
        PASSWORD,
    ));
    assert!(line.contains("no API key"), "{line}");
    server.assert_no_secrets(&[&key.key, PASSWORD]);
}
