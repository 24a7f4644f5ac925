//! `assetpool signing-keys ...`: list, rotate, and `seal`, the migration of
//! keys stored unsealed to the key-encryption key (see
//! [`crate::key_encryption`]).

use super::backend::Backend;
use super::output::{print_json, print_table, say, time};
use super::Context;
use crate::key_encryption::{read_key_file, Generate, KekSource};
use anyhow::Context as _;
use assetpool_core::admin::SealedSigningKeys;
use assetpool_core::ids::SigningKeyId;
use assetpool_core::KeySealer;
use clap::Subcommand;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Signing key commands.
#[derive(Debug, Subcommand)]
pub enum SigningKeysCommand {
    /// Lists signing keys.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Signs new tokens with a new key at once; old keys stay published until their tokens expire.
    Rotate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Takes a retired signing key out of the JWKS at once: every server
    /// refuses its tokens within a second. The active key cannot be revoked:
    /// run `rotate` first, then revoke the old key (its users log in again).
    Revoke {
        /// The key's id (`kid`).
        kid: SigningKeyId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypts every signing key stored unencrypted with the key-encryption
    /// key (configured, or on SQLite the key file beside the database,
    /// created if missing), in one transaction. Running it again changes nothing.
    Seal {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypts every signing key under a new key-encryption key, in one
    /// transaction (each opened with the current key first). Then give every
    /// server the new key and restart them: the old one no longer opens them.
    Reseal {
        /// File holding the new key-encryption key (32 bytes, base64 or hex).
        #[arg(long, value_name = "FILE")]
        new_kek_file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `reseal --json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResealSummary {
    /// Keys re-encrypted, newest first.
    resealed: Vec<SigningKeyId>,
    /// The file holding the new key-encryption key.
    new_kek_file: String,
}

/// What `seal --json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SealSummary {
    /// Keys sealed now.
    sealed: Vec<SigningKeyId>,
    /// Keys that were already sealed with the key-encryption key.
    already_sealed: Vec<SigningKeyId>,
    /// The file holding the key-encryption key (`null`: the environment).
    kek_file: Option<String>,
    /// Whether this command generated that file.
    kek_generated: bool,
}

/// Runs a signing key command.
pub async fn run(context: &Context, command: SigningKeysCommand) -> anyhow::Result<()> {
    match command {
        SigningKeysCommand::List { json } => list(&context.backend().await?, json).await,
        SigningKeysCommand::Rotate { json } => {
            // On a fresh database this makes the first key: seal it.
            let backend = context
                .backend_with(Generate::OnFreshDatabase, context.admin_password())
                .await?;
            rotate(&backend, json).await
        }
        SigningKeysCommand::Seal { json } => {
            context.database_host_only("signing-keys seal")?;
            seal(context, json).await
        }
        SigningKeysCommand::Reseal { new_kek_file, json } => {
            context.database_host_only("signing-keys reseal")?;
            reseal(context, &new_kek_file, json).await
        }
        SigningKeysCommand::Revoke { kid, json } => {
            let key = context.backend().await?.revoke_signing_key(&kid).await?;
            if json {
                return print_json(&key);
            }
            println!(
                "Signing key {} revoked: no longer published, its tokens are refused.",
                key.kid
            );
            Ok(())
        }
    }
}

/// `signing-keys list`.
async fn list(backend: &Backend, json: bool) -> anyhow::Result<()> {
    let keys = backend.signing_keys().await?;
    if json {
        return print_json(&keys);
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            vec![
                key.kid.clone(),
                key.algorithm.clone(),
                format!("{:?}", key.status).to_lowercase(),
                time(Some(key.created_at)),
                time(key.retires_at),
            ]
        })
        .collect();
    print_table(&["KID", "ALGORITHM", "STATUS", "CREATED", "RETIRES"], &rows);
    Ok(())
}

/// `signing-keys rotate`.
async fn rotate(backend: &Backend, json: bool) -> anyhow::Result<()> {
    let key = backend.rotate_signing_key().await?;
    if json {
        return print_json(&key);
    }
    say!(
        "New tokens are signed with {}; earlier keys stay published until their tokens expire.",
        key.kid
    );
    Ok(())
}

/// `signing-keys seal`.
async fn seal(context: &Context, json: bool) -> anyhow::Result<()> {
    let store = context.store().await?;
    let encryption = context
        .key_encryption(store.as_ref(), Generate::UnlessSealedKeysExist)
        .await?;
    if !encryption.sealer.encrypts() {
        if encryption.sealed_keys > 0 {
            anyhow::bail!(encryption.missing_key_message());
        }
        anyhow::bail!(
            "no key-encryption key configured: set ASSETPOOL_SIGNING_KEY_KEK or \
             --signing-key-kek-file (the same key on every server of this database)"
        );
    }
    let (kek_file, kek_generated) = match &encryption.source {
        KekSource::BesideDatabase { path, generated } => (Some(path.clone()), *generated),
        _ => (context.configured_kek_file(), false),
    };
    encryption.log_generated();
    let outcome = context
        .admin_with(store, encryption.sealer)?
        .seal_signing_keys()
        .await?;
    let kek_file = kek_file.map(|path| path.display().to_string());
    if json {
        return print_json(&SealSummary {
            sealed: outcome.sealed,
            already_sealed: outcome.already_sealed,
            kek_file,
            kek_generated,
        });
    }
    print_seal_outcome(&outcome, kek_file.as_deref());
    Ok(())
}

/// `signing-keys reseal`.
async fn reseal(context: &Context, new_kek_file: &Path, json: bool) -> anyhow::Result<()> {
    let encoded = read_key_file(new_kek_file).with_context(|| {
        format!(
            "cannot read the new key-encryption key file {}",
            new_kek_file.display()
        )
    })?;
    let new = KeySealer::from_encoded_key(&encoded).map_err(|error| {
        anyhow::anyhow!(
            "invalid new key-encryption key in {}: {error}",
            new_kek_file.display()
        )
    })?;
    let resealed = context.admin().await?.reseal_signing_keys(&new).await?;
    let new_kek_file = new_kek_file.display().to_string();
    if json {
        return print_json(&ResealSummary {
            resealed,
            new_kek_file,
        });
    }
    if resealed.is_empty() {
        say!("No signing key is stored yet; nothing to re-encrypt.");
        return Ok(());
    }
    say!(
        "Re-encrypted {} signing key(s) ({}) with the key-encryption key in {new_kek_file}.",
        resealed.len(),
        resealed
            .iter()
            .map(SigningKeyId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!(
        "Give every server of this database this key (signing-key-kek-file, or the file beside a \
         SQLite database) and restart them one at a time: the previous key no longer opens the \
         signing keys. Running servers keep the keys they have opened; do not rotate until all \
         have the new key."
    );
    Ok(())
}

fn print_seal_outcome(outcome: &SealedSigningKeys, kek_file: Option<&str>) {
    let with = match kek_file {
        Some(path) => format!("the key-encryption key in {path}"),
        None => "the key-encryption key of ASSETPOOL_SIGNING_KEY_KEK".to_owned(),
    };
    match (outcome.sealed.as_slice(), outcome.already_sealed.len()) {
        ([], 0) => say!("No signing key is stored yet; nothing to seal."),
        ([], already) => {
            say!("Every signing key ({already}) is already sealed with {with}; nothing to do.")
        }
        (sealed, _) => {
            say!(
                "Sealed {} signing key(s) ({}) with {with}.",
                sealed.len(),
                sealed
                    .iter()
                    .map(SigningKeyId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            say!(
                "Restart the servers running on this database with this key-encryption key, \
                 so that they can open the keys rotated from now on."
            );
        }
    }
}
