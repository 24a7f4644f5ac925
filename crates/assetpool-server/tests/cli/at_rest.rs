//! Secrets at rest, through the real binary: a SQLite database and the folder
//! assetpool creates for it are private whatever the umask; a fresh SQLite
//! install seals its signing keys with a key-encryption key generated into a
//! file beside the database; an existing install with `plain:` keys keeps
//! serving until `signing-keys seal`; a configured key-encryption key refuses
//! `plain:` keys (both backends); `import` seals `plain:` keys.

use crate::helpers::{
    assert_clean_failure, assert_resource_ok, command, json_of, kid, login_ok, stderr, stdout, Db,
    Key, Server, PASSWORD,
};
use assetpool_core::service::new_signing_key_record;
use assetpool_core::KeySealer;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.com";
/// The key-encryption key file beside `test.db` (the helpers' database).
const TEST_KEK_FILE: &str = "test-signing-key.kek";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The sealed private keys as stored, read through the storage backend.
async fn stored_private_keys(db: &Db) -> Vec<(String, String)> {
    let store = assetpool_server::storage::open_store(&db.url)
        .await
        .unwrap();
    store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| (key.kid.into_string(), key.sealed_private_key))
        .collect()
}

async fn assert_all_sealed(db: &Db) {
    let keys = stored_private_keys(db).await;
    assert!(!keys.is_empty(), "no signing key stored");
    for (kid, sealed) in &keys {
        assert!(
            sealed.starts_with("xchacha20poly1305:") && !sealed.contains("plain:"),
            "{kid} is stored as {}…",
            &sealed[..sealed.len().min(12)]
        );
    }
}

/// A database as an earlier version left it: one `plain:` signing key,
/// written through the storage backend. Returns its kid.
async fn with_plain_signing_key(db: &Db) -> String {
    let store = assetpool_server::storage::open_store(&db.url)
        .await
        .unwrap();
    let record = new_signing_key_record(chrono::Utc::now(), &KeySealer::plain()).unwrap();
    assert!(record.sealed_private_key.starts_with("plain:"));
    assert!(store.insert_first_signing_key(&record).await.unwrap());
    record.kid.into_string()
}

/// A key-encryption key file (0600) in the test's folder, and its content.
fn kek_file(db: &Db, name: &str) -> (PathBuf, String) {
    let encoded = STANDARD.encode(rand_bytes());
    let path = db.path().join(name);
    std::fs::write(&path, format!("{encoded}\n")).unwrap();
    set_mode(&path, 0o600);
    (path, encoded)
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes
}

/// Runs `command` to its end, killing it after 20 s (a `serve` that should
/// have refused to start): the output, and whether it ended by itself.
fn run_bounded(mut command: Command) -> (Output, bool) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ended = true;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            ended = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), ended)
}

/// `serve` on `db` with `extra`, expected to refuse to start: its one error line.
fn refused_serve(db: &Db, extra: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    command.args(extra).envs(env.iter().copied());
    let (output, ended) = run_bounded(command);
    assert!(
        ended,
        "serve started although it should have refused; stderr: {}",
        stderr(&output)
    );
    assert_clean_failure(&output)
}

/// A key and a user made with the command line.
fn key_and_user(db: &Db, extra: &[&str]) -> Key {
    let mut args = vec![
        "keys", "create", "--name", "shop", "--env", "prod", "--json",
    ];
    args.extend_from_slice(extra);
    let key = Key::from_json(&db.json(&args));
    let mut args = vec!["users", "create", "--email", ALICE, "--password-stdin"];
    args.extend_from_slice(extra);
    let created = db.run_stdin(&args, &format!("{PASSWORD}\n"));
    assert!(created.status.success(), "{}", stderr(&created));
    key
}

#[tokio::test]
async fn a_fresh_sqlite_install_is_private_and_seals_its_signing_keys() {
    let mut db = Db::new();
    let folder = db.path().join("data").join("private");
    db.url = format!("sqlite://{}/assetpool.db", folder.display());
    let mut server = Server::start_under_umask(&db, "022", &[]);
    let key = key_and_user(&db, &[]);
    let before = login_ok(&server, &key.key, ALICE, PASSWORD).await;

    assert_eq!(mode(&db.path().join("data")), 0o700, "created folder");
    assert_eq!(mode(&folder), 0o700, "created folder");
    let kek_path = folder.join("assetpool-signing-key.kek");
    for name in ["assetpool.db", "assetpool.db-wal", "assetpool.db-shm"] {
        assert_eq!(mode(&folder.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&kek_path), 0o600, "the key-encryption key file");
    let kek = std::fs::read_to_string(&kek_path).unwrap();
    assert_eq!(
        STANDARD.decode(kek.trim()).unwrap().len(),
        32,
        "32 bytes, base64"
    );
    let log = server.stderr();
    assert!(
        log.contains(&kek_path.display().to_string()) && log.contains("--signing-key-kek-file"),
        "the start does not say where the key-encryption key is and how to move it: {log}"
    );
    assert!(
        !log.contains(kek.trim()),
        "the key-encryption key is logged"
    );
    assert_all_sealed(&db).await;

    server.terminate();
    let server = Server::start(&db, &[]);
    assert!(
        !server.stderr().contains("generated"),
        "a second start generates again: {}",
        server.stderr()
    );
    assert_resource_ok(&server, &key.key, &before.access).await;
    let after = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    assert_eq!(kid(&after.access), kid(&before.access));
    assert_eq!(std::fs::read_to_string(&kek_path).unwrap(), kek);
}

#[test]
fn an_existing_folder_is_left_alone_and_a_readable_database_is_warned_about() {
    let db = Db::new();
    set_mode(db.path(), 0o755);
    let mut created = command(db.path());
    created.args(["keys", "list", "--json", "--database", &db.url]);
    let mut umask = crate::helpers::command_under_umask(db.path(), "022");
    umask.args(["keys", "list", "--json", "--database", &db.url]);
    assert_eq!(json_of(&umask.output().unwrap()), json!([]));
    assert_eq!(mode(db.path()), 0o755, "an existing folder was changed");
    let database = db.path().join("test.db");
    assert_eq!(mode(&database), 0o600);

    let quiet = created.output().unwrap();
    assert!(!stderr(&quiet).contains("chmod"), "{}", stderr(&quiet));
    set_mode(&database, 0o644);
    let warned = created.output().unwrap();
    assert_eq!(json_of(&warned), json!([]));
    let log = stderr(&warned);
    assert!(
        log.contains(&database.display().to_string()) && log.contains("chmod 600"),
        "no warning about a database every local user can read: {log}"
    );
    assert_eq!(mode(&database), 0o644, "the database's mode was changed");
}

#[tokio::test]
async fn an_existing_install_with_plain_keys_serves_until_sealed() {
    let db = Db::new();
    let plain_kid = with_plain_signing_key(&db).await;
    let key = key_and_user(&db, &[]);
    let kek_path = db.path().join(TEST_KEK_FILE);
    assert!(!kek_path.exists(), "a key file beside a database with keys");

    let mut server = Server::start(&db, &[]);
    assert!(
        server.stderr().contains("assetpool signing-keys seal"),
        "no warning naming the migration command: {}",
        server.stderr()
    );
    let before = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    assert_eq!(kid(&before.access), plain_kid);
    server.terminate();
    assert!(
        !kek_path.exists(),
        "serve sealed behind the operator's back"
    );

    let sealed = db.json(&["signing-keys", "seal", "--json"]);
    assert_eq!(sealed["sealed"], json!([plain_kid]), "{sealed}");
    assert_eq!(sealed["alreadySealed"], json!([]), "{sealed}");
    assert_eq!(sealed["kekFile"], json!(kek_path.display().to_string()));
    assert_eq!(sealed["kekGenerated"], json!(true));
    assert_eq!(mode(&kek_path), 0o600);
    assert_all_sealed(&db).await;

    let again = db.json(&["signing-keys", "seal", "--json"]);
    assert_eq!(again["sealed"], json!([]), "{again}");
    assert_eq!(again["alreadySealed"], json!([plain_kid]), "{again}");
    assert_eq!(again["kekGenerated"], json!(false));
    let text = db.ok(&["signing-keys", "seal"]);
    assert!(text.contains("already sealed"), "{text}");
    let audit = db.json(&["audit", "list", "--json"]);
    let seals: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "signing_key.seal")
        .collect();
    assert_eq!(seals.len(), 3, "{audit}");
    assert!(seals.iter().all(|entry| entry["outcome"] == "success"));

    let server = Server::start(&db, &[]);
    assert!(
        !server.stderr().contains("signing-keys seal"),
        "{}",
        server.stderr()
    );
    assert_resource_ok(&server, &key.key, &before.access).await;
    let after = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    assert_eq!(kid(&after.access), plain_kid);
}

/// A configured key-encryption key (file or environment) refuses `plain:`
/// keys at start until `signing-keys seal` seals them.
async fn configured_kek_refuses_plain_keys_until_sealed(db: Db) {
    let plain_kid = with_plain_signing_key(&db).await;
    let key = key_and_user(&db, &[]);
    let (kek_path, kek) = kek_file(&db, "operator.kek");
    let kek_arg = kek_path.display().to_string();

    let line = refused_serve(&db, &["--signing-key-kek-file", &kek_arg], &[]);
    assert!(
        line.contains("signing-keys seal") && line.contains(&plain_kid),
        "{line}"
    );
    let line = refused_serve(&db, &[], &[("ASSETPOOL_SIGNING_KEY_KEK", &kek)]);
    assert!(line.contains("signing-keys seal"), "{line}");
    assert!(!line.contains(&kek), "the key-encryption key is shown");

    let sealed = db.json(&[
        "signing-keys",
        "seal",
        "--json",
        "--signing-key-kek-file",
        &kek_arg,
    ]);
    assert_eq!(sealed["sealed"], json!([plain_kid]), "{sealed}");
    assert_eq!(sealed["kekFile"], json!(kek_arg));
    assert_eq!(sealed["kekGenerated"], json!(false));
    assert_all_sealed(&db).await;

    let (other_path, _) = kek_file(&db, "other.kek");
    let line = refused_serve(
        &db,
        &["--signing-key-kek-file", &other_path.display().to_string()],
        &[],
    );
    assert!(line.contains("does not open signing key"), "{line}");

    let server = Server::start(&db, &["--signing-key-kek-file", &kek_arg]);
    let tokens = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    assert_eq!(kid(&tokens.access), plain_kid);
    assert_resource_ok(&server, &key.key, &tokens.access).await;
}

#[tokio::test]
async fn a_configured_kek_refuses_plain_keys_until_sealed_on_sqlite() {
    configured_kek_refuses_plain_keys_until_sealed(Db::new()).await;
}

#[tokio::test]
async fn a_configured_kek_refuses_plain_keys_until_sealed_on_postgres() {
    let Some(db) = Db::postgres("a configured kek refuses plain keys").await else {
        return;
    };
    configured_kek_refuses_plain_keys_until_sealed(db).await;
}

#[tokio::test]
async fn postgres_without_a_kek_keeps_plain_keys_with_a_warning_and_seal_needs_one() {
    let Some(db) = Db::postgres("postgres without a kek").await else {
        return;
    };
    let server = Server::start(&db, &[]);
    let log = server.stderr();
    assert!(
        log.contains("unencrypted") && log.contains("--signing-key-kek-file"),
        "{log}"
    );
    drop(server);
    let line = assert_clean_failure(&db.run(&["signing-keys", "seal"]));
    assert!(line.contains("key-encryption key"), "{line}");
    let files: Vec<String> = std::fs::read_dir(db.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".kek"))
        .collect();
    assert!(files.is_empty(), "a key file for PostgreSQL: {files:?}");
}

/// `export` of a database with `plain:` keys: the export's text.
async fn plain_export() -> (Db, String, Key, String) {
    let source = Db::new();
    let plain_kid = with_plain_signing_key(&source).await;
    let key = key_and_user(&source, &[]);
    let exported = source.run(&["export", "--include-signing-keys"]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let text = stdout(&exported);
    assert!(text.contains("plain:"), "the source holds no plain key");
    assert!(
        stderr(&exported).contains("1 signing key(s) unencrypted"),
        "export does not point out the unsealed key: {}",
        stderr(&exported)
    );
    (source, text, key, plain_kid)
}

#[tokio::test]
async fn import_seals_plain_keys() {
    let (_source, exported, key, plain_kid) = plain_export().await;

    let target = Db::new();
    let summary = json_of(&target.run_stdin(&["import", "--json"], &exported));
    assert_eq!(summary["signingKeys"], 1, "{summary}");
    assert_eq!(summary["sealedSigningKeys"], 1, "{summary}");
    assert_eq!(mode(&target.path().join(TEST_KEK_FILE)), 0o600);
    assert_all_sealed(&target).await;
    let server = Server::start(&target, &[]);
    let tokens = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    assert_eq!(kid(&tokens.access), plain_kid);

    let Some(postgres) = Db::postgres("import seals plain keys").await else {
        return;
    };
    let (kek_path, _) = kek_file(&postgres, "operator.kek");
    let kek_arg = kek_path.display().to_string();
    let (other_path, _) = kek_file(&postgres, "other.kek");
    let sealed_export = stdout(&target.run(&["export", "--include-signing-keys"]));
    assert!(!sealed_export.contains("plain:"));
    let other_arg = other_path.display().to_string();
    let line = assert_clean_failure(&postgres.run_stdin(
        &["import", "--signing-key-kek-file", &other_arg],
        &sealed_export,
    ));
    assert!(line.contains("key-encryption key"), "{line}");

    let imported = postgres.run_stdin(
        &["import", "--json", "--signing-key-kek-file", &kek_arg],
        &exported,
    );
    assert_eq!(json_of(&imported)["signingKeys"], 1);
    assert_all_sealed(&postgres).await;
    let server = Server::start(&postgres, &["--signing-key-kek-file", &kek_arg]);
    let tokens: Value = login_ok(&server, &key.key, ALICE, PASSWORD).await.body;
    assert_eq!(
        kid(tokens["accessToken"].as_str().unwrap()),
        plain_kid,
        "{tokens}"
    );
}

/// A server that cannot open a signing key added while it runs (sealed
/// under a key-encryption key it was not given) keeps its keys and keeps
/// following the change feed: it does not fail closed, and revocations
/// still reach it within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_this_server_cannot_open_does_not_stop_its_change_feed() {
    let Some(db) = Db::postgres("unopenable_signing_key").await else {
        return;
    };
    let key = key_and_user(&db, &[]);
    let server = Server::start(&db, &["--max-staleness", "2"]);
    let tokens = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    let (kek_path, _) = kek_file(&db, "operator.kek");
    let kek_arg = kek_path.display().to_string();
    db.ok(&["signing-keys", "seal", "--signing-key-kek-file", &kek_arg]);
    db.ok(&["signing-keys", "rotate", "--signing-key-kek-file", &kek_arg]);
    // Past the maximum staleness, the server still answers from memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;
    assert!(
        server.stderr().contains("cannot be opened here"),
        "{}",
        server.stderr()
    );
    // And a revocation still arrives.
    db.ok(&["keys", "revoke", &key.id]);
    crate::helpers::time_until_401(&server, &key.key, &tokens.access, "api_key_revoked").await;
}

/// `export` writes no private signing key unless asked; asked, it seals
/// those stored unencrypted when a key-encryption key is at hand.
#[tokio::test]
async fn export_leaves_signing_keys_out_unless_asked_and_seals_them_when_it_can() {
    let source = Db::new();
    with_plain_signing_key(&source).await;
    key_and_user(&source, &[]);
    let exported = source.run(&["export"]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let text = stdout(&exported);
    assert!(!text.contains("\"type\":\"signing_key\""), "{text}");
    assert!(!text.contains("plain:"));
    assert!(
        stderr(&exported).contains("Left out 1 signing key(s)"),
        "{}",
        stderr(&exported)
    );

    let (kek_path, _) = kek_file(&source, "operator.kek");
    let kek_arg = kek_path.display().to_string();
    let sealed = source.run(&[
        "export",
        "--include-signing-keys",
        "--signing-key-kek-file",
        &kek_arg,
    ]);
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    let text = stdout(&sealed);
    assert!(text.contains("\"type\":\"signing_key\""), "{text}");
    assert!(!text.contains("plain:"), "an unencrypted key was exported");
    assert!(text.contains("xchacha20poly1305:"));
    // Import into a database with the same key opens it.
    let target = Db::new();
    let imported = target.run_stdin(
        &["import", "--json", "--signing-key-kek-file", &kek_arg],
        &text,
    );
    assert_eq!(json_of(&imported)["signingKeys"], 1);
}

/// `reseal` with a current key that does not open the signing keys, or a
/// new key file that does not exist: one error line, nothing written.
async fn reseal_refusals_write_nothing(db: &Db, old: &str, new: &str, before: &[(String, String)]) {
    let (other_path, _) = kek_file(db, "other.kek");
    let other = other_path.display().to_string();
    let refused = db.cmd(&[
        "signing-keys",
        "reseal",
        "--new-kek-file",
        new,
        "--signing-key-kek-file",
        &other,
    ]);
    assert_clean_failure(&crate::helpers::output(refused, None));
    assert_eq!(
        stored_private_keys(db).await,
        before,
        "written although refused"
    );
    let missing = db.cmd(&[
        "signing-keys",
        "reseal",
        "--new-kek-file",
        "no-such.kek",
        "--signing-key-kek-file",
        old,
    ]);
    let line = assert_clean_failure(&crate::helpers::output(missing, None));
    assert!(line.contains("no-such.kek"), "{line}");
}

/// `signing-keys reseal --new-kek-file`: every signing key re-encrypted under
/// the new key in one step (audited); servers then start with the new key
/// only. With a current key that does not open them, nothing is written.
async fn reseal_moves_the_signing_keys_to_a_new_kek(db: Db) {
    let (old_path, _) = kek_file(&db, "old.kek");
    let old = old_path.display().to_string();
    let key = key_and_user(&db, &["--signing-key-kek-file", &old]);
    for _ in 0..2 {
        db.json(&[
            "signing-keys",
            "rotate",
            "--json",
            "--signing-key-kek-file",
            &old,
        ]);
    }
    let before = stored_private_keys(&db).await;
    assert_eq!(before.len(), 2);
    let (new_path, _) = kek_file(&db, "new.kek");
    let new = new_path.display().to_string();

    reseal_refusals_write_nothing(&db, &old, &new, &before).await;

    let resealed = db.json(&[
        "signing-keys",
        "reseal",
        "--new-kek-file",
        &new,
        "--json",
        "--signing-key-kek-file",
        &old,
    ]);
    let kids: Vec<&str> = resealed["resealed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kid| kid.as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = before.iter().map(|(kid, _)| kid.as_str()).collect();
    let mut listed = kids.clone();
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    assert_eq!(resealed["newKekFile"], json!(new));
    let after = stored_private_keys(&db).await;
    for ((kid, was), (same_kid, now)) in before.iter().zip(&after) {
        assert_eq!(kid, same_kid);
        assert_ne!(was, now, "{kid} was not re-encrypted");
    }
    assert_all_sealed(&db).await;

    let line = refused_serve(&db, &["--signing-key-kek-file", &old], &[]);
    assert!(line.contains("does not open signing key"), "{line}");
    let server = Server::start(&db, &["--signing-key-kek-file", &new]);
    let tokens = login_ok(&server, &key.key, ALICE, PASSWORD).await;
    assert_resource_ok(&server, &key.key, &tokens.access).await;
    let audit = db.json(&["audit", "list", "--json", "--signing-key-kek-file", &new]);
    assert!(
        audit.to_string().contains("signing_key.reseal"),
        "the reseal is not audited: {audit}"
    );
}

#[tokio::test]
async fn reseal_moves_the_signing_keys_to_a_new_kek_on_sqlite() {
    reseal_moves_the_signing_keys_to_a_new_kek(Db::new()).await;
}

#[tokio::test]
async fn reseal_moves_the_signing_keys_to_a_new_kek_on_postgres() {
    let Some(db) = Db::postgres("reseal").await else {
        return;
    };
    reseal_moves_the_signing_keys_to_a_new_kek(db).await;
}
