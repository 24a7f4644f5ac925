//! `bench-seed`: fills an empty SQLite database with N applications, N API
//! keys, N users and N live sessions through the storage layer's bulk path
//! (`Store::import_records`), plus one signing key, and mints access tokens
//! for a sample of the sessions.
//!
//! It writes, into `--out`:
//! - `pairs.txt`: `KEY TOKEN` per line, for the load generator;
//! - `revoke.txt`: `KEY_ID KEY TOKEN` per line, pairs kept apart for the
//!   revocation measurement;
//! - `login.txt`: `KEY EMAIL PASSWORD` per line, for the login measurement;
//! - `key_ids.txt`: the id of each key of `pairs.txt`, in the same order, for
//!   `bench-flush`.
//!
//! These files hold working credentials of the benchmark database only.

use anyhow::Context as _;
use assetpool_core::api_key::ApiKeySecret;
use assetpool_core::export::{
    ExportRecord, ExportedApiKey, ExportedApplication, ExportedSession, ExportedSetting,
    ExportedSigningKey, ExportedUser,
};
use assetpool_core::ids::{self, ApplicationId, KeyId, SessionId, UserId};
use assetpool_core::password::{Argon2Settings, PasswordHasher};
use assetpool_core::service::new_signing_key_record;
use assetpool_core::store::prelude::*;
use assetpool_core::token::{AccessClaims, KeyRing};
use assetpool_core::{Environment, KeySealer, SecretHash};
use assetpool_store_sqlite::SqliteStore;
use chrono::{Duration, Utc};
use clap::Parser;
use rand::{Rng as _, SeedableRng as _};
use secrecy::SecretString;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The password of every seeded user.
const PASSWORD: &str = "bench-password-correct-horse-battery";
/// Keys kept apart for the revocation measurement.
const REVOCATION_KEYS: usize = 20;
/// Users written to `login.txt`.
const LOGIN_USERS: usize = 64;

/// Seeds a benchmark database.
#[derive(Debug, Parser)]
struct Args {
    /// The database (must be empty), `sqlite://PATH`.
    #[arg(long)]
    database: String,
    /// Applications, keys, users and sessions to create (each).
    #[arg(long)]
    count: usize,
    /// Key/token pairs written to `pairs.txt`.
    #[arg(long, default_value_t = 10_000)]
    sample: usize,
    /// Folder of the output files.
    #[arg(long)]
    out: PathBuf,
    /// Issuer of the minted tokens (the server must run with the same `--issuer`).
    #[arg(long)]
    issuer: String,
    /// Audience of the minted tokens.
    #[arg(long, default_value = "assetpool")]
    audience: String,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    token_ttl: i64,
}

/// One seeded API key with its secret.
struct SeededKey {
    id: KeyId,
    secret: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    assetpool_bench::block_on(run(args))
}

/// A valid key (`apk_prod_<32 base62><crc32 as 6 base62>`) from `random`.
fn key_text(random: &mut rand::rngs::StdRng) -> String {
    let mut text = String::with_capacity(47);
    text.push_str("apk_prod_");
    for _ in 0..32 {
        text.push(char::from(BASE62[random.gen_range(0..BASE62.len())]));
    }
    let mut value = u64::from(crc32fast::hash(text.as_bytes()));
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        let index = usize::try_from(value % 62).unwrap_or(0);
        *digit = BASE62[index];
        value /= 62;
    }
    text.extend(digits.iter().map(|&byte| char::from(byte)));
    text
}

#[allow(clippy::too_many_lines)]
async fn run(args: Args) -> anyhow::Result<()> {
    let reserved = REVOCATION_KEYS + 1;
    anyhow::ensure!(
        args.count > reserved,
        "--count must be more than {reserved}"
    );
    // Every key outside the reserved ones when there are fewer than `--sample`.
    let sample = args.sample.min(args.count - reserved).max(1);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let started = Instant::now();
    let now = Utc::now();
    let count = args.count;

    // One shared password hash, computed once with the default parameters.
    let hasher = PasswordHasher::new(Argon2Settings::default())?;
    let password_hash = hasher.hash(&SecretString::from(PASSWORD))?;
    let sealer = KeySealer::plain();
    let signing = new_signing_key_record(now, &sealer)?;
    let ring = KeyRing::from_records(std::slice::from_ref(&signing), &sealer, now)?;

    let mut random = rand::rngs::StdRng::from_entropy();
    let mut records: Vec<ExportRecord> = Vec::with_capacity(4 * count + 2);
    records.push(ExportRecord::Setting(ExportedSetting {
        name: "issuer".to_owned(),
        value: args.issuer.clone(),
    }));
    let mut applications = Vec::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    for index in 0..count {
        let application = ApplicationId::new();
        let secret = key_text(&mut random);
        let key = SeededKey {
            id: KeyId::new(),
            secret,
        };
        records.push(ExportRecord::Application(ExportedApplication {
            id: application.clone(),
            name: format!("bench application {index}"),
            created_at: now,
            members_only: false,
        }));
        // Through the export format's JSON, so that optional fields keep their defaults.
        let exported: ExportedApiKey = serde_json::from_value(serde_json::json!({
            "id": key.id,
            "application_id": application,
            "name": format!("bench key {index}"),
            "environment": "production",
            "key_hash": SecretHash::of(&key.secret).to_hex(),
            "prefix": key.secret.chars().take(15).collect::<String>(),
            "created_at": now.timestamp_millis(),
            "expires_at": null,
            "revoked_at": null,
            "revoked_reason": null,
            "successor_id": null,
            "last_used_at": null,
        }))?;
        records.push(ExportRecord::ApiKey(Box::new(exported)));
        let user = UserId::new();
        records.push(ExportRecord::User(ExportedUser {
            id: user.clone(),
            email: format!("user{index}@bench.example"),
            password_hash: password_hash.clone(),
            admin: false,
            disabled: false,
            created_at: now,
            scopes: None,
        }));
        applications.push(application);
        keys.push(key);
        users.push(user);
    }
    records.push(ExportRecord::SigningKey(ExportedSigningKey::from(&signing)));
    let mut sessions = Vec::with_capacity(count);
    for index in 0..count {
        let session = SessionId::new();
        records.push(ExportRecord::Session(ExportedSession {
            id: session.clone(),
            user_id: users[index].clone(),
            application_id: applications[index].clone(),
            api_key_id: keys[index].id.clone(),
            created_at: now,
            access_expires_at: now + Duration::seconds(args.token_ttl),
            revoked_at: None,
            scopes: None,
        }));
        sessions.push(session);
    }
    let built = started.elapsed();

    let store = SqliteStore::open(&args.database).await?;
    let import_started = Instant::now();
    store.import_records(&records).await?;
    let imported = import_started.elapsed();
    store.close().await;
    drop(records);

    let mint = |index: usize| -> anyhow::Result<String> {
        let issued_at = now.timestamp();
        let claims = AccessClaims {
            iss: args.issuer.clone(),
            aud: args.audience.clone(),
            sub: users[index].to_string(),
            iat: issued_at,
            nbf: issued_at,
            exp: issued_at + args.token_ttl,
            jti: ids::new_token_id(),
            sid: sessions[index].to_string(),
            app: applications[index].to_string(),
            env: Environment::Production,
            client_id: applications[index].to_string(),
            email: format!("user{index}@bench.example"),
            key_id: None,
            scope: None,
        };
        ring.sign(&claims)
            .map_err(|error| anyhow::anyhow!("cannot sign a token: {error}"))
    };
    let check = |secret: &str| -> anyhow::Result<()> {
        ApiKeySecret::parse(secret)
            .map(|_| ())
            .map_err(|error| anyhow::anyhow!("seeded key is not valid: {error}"))
    };

    // Sampled pairs spread over the whole range; the reserved ones sit at the end.
    let spread = count - reserved;
    let mut pairs = String::new();
    let mut key_ids = String::new();
    for step in 0..sample {
        let index = step * spread / sample.max(1);
        check(&keys[index].secret)?;
        key_ids.push_str(keys[index].id.as_str());
        key_ids.push('\n');
        pairs.push_str(&keys[index].secret);
        pairs.push(' ');
        pairs.push_str(&mint(index)?);
        pairs.push('\n');
    }
    let mut revoke = String::new();
    for (index, key) in keys.iter().enumerate().skip(spread).take(REVOCATION_KEYS) {
        check(&key.secret)?;
        revoke.push_str(&format!("{} {} {}\n", key.id, key.secret, mint(index)?));
    }
    let login_key = &keys[count - 1].secret;
    check(login_key)?;
    let mut login = String::new();
    for index in 0..LOGIN_USERS.min(count) {
        login.push_str(&format!(
            "{login_key} user{index}@bench.example {PASSWORD}\n"
        ));
    }
    for (name, text) in [
        ("pairs.txt", &pairs),
        ("revoke.txt", &revoke),
        ("login.txt", &login),
        ("key_ids.txt", &key_ids),
    ] {
        let path = args.out.join(name);
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())?;
    }
    println!(
        "seeded count={count} records={} build_s={:.2} import_s={:.2} total_s={:.2} pairs={sample}",
        4 * count + 2,
        built.as_secs_f64(),
        imported.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
