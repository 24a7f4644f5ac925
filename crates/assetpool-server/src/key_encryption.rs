//! The key-encryption key that seals signing keys at rest, and where it
//! comes from:
//!
//! 1. configured: `ASSETPOOL_SIGNING_KEY_KEK`, or the file named by
//!    `--signing-key-kek-file` (`ASSETPOOL_SIGNING_KEY_KEK_FILE`, config
//!    `signing-key-kek-file`);
//! 2. otherwise, for a SQLite database file, the file `NAME-signing-key.kek`
//!    beside it (`assetpool-data/assetpool-signing-key.kek` for the default
//!    database). `serve` on a database without any signing key generates
//!    it (32 random bytes, base64, mode 0600) and says so, as do the commands
//!    that would make the first key or seal keys (`signing-keys rotate`,
//!    `signing-keys seal`, `import`); every command finds and uses it;
//! 3. otherwise none, and signing keys are stored unsealed (`plain:`), with a
//!    warning at start: PostgreSQL without a configured key (its servers
//!    share no folder, so each must be given the same key), and SQLite
//!    installs whose keys an earlier version stored unsealed, which keep
//!    working until `assetpool signing-keys seal` seals them.
//!
//! With a key-encryption key, `serve` refuses to start on `plain:` keys.

use anyhow::Context as _;
use assetpool_core::ids::SigningKeyId;
use assetpool_core::sealer::SealError;
use assetpool_core::store::SigningKeyRecord;
use assetpool_core::{KeySealer, Store};
use assetpool_store_sqlite::SqliteStore;
use secrecy::SecretBox;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What the file beside a SQLite database is named after the database's
/// name without extension (`assetpool` + this).
pub const KEY_FILE_SUFFIX: &str = "-signing-key.kek";

/// When the key file beside a SQLite database may be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// Never (an import of keys sealed with a key that is not at hand).
    Never,
    /// When the database holds no signing key yet: a fresh install.
    OnFreshDatabase,
    /// Unless the database holds sealed keys, which a new key could not open
    /// (`signing-keys seal`).
    UnlessSealedKeysExist,
}

/// Where the key-encryption key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// Flag, environment or config file.
    Configured,
    /// The file beside the SQLite database; `generated` by this command.
    BesideDatabase {
        /// The file.
        path: PathBuf,
        /// Whether this command created it.
        generated: bool,
    },
    /// No key-encryption key: keys are stored unsealed.
    None,
}

/// The sealer of a database's signing keys, and what was found on the way.
#[derive(Debug)]
pub struct KeyEncryption {
    /// Seals and opens private keys.
    pub sealer: KeySealer,
    /// Where its key-encryption key came from.
    pub source: KekSource,
    /// The key file beside a SQLite database file, whether it exists or not.
    pub file_beside_database: Option<PathBuf>,
    /// Ids of the signing keys stored unsealed.
    pub plain_kids: Vec<SigningKeyId>,
    /// How many signing keys are stored sealed.
    pub sealed_keys: usize,
    /// The stored signing keys.
    keys: Vec<SigningKeyRecord>,
}

impl KeyEncryption {
    /// Finds the key-encryption key of the database at `database_url`, whose
    /// store is `store`: `configured`, else the file beside a SQLite
    /// database, generated if `generate` allows, else none.
    pub async fn resolve(
        database_url: &str,
        configured: Option<&SecretBox<str>>,
        store: &dyn Store,
        generate: Generate,
    ) -> anyhow::Result<Self> {
        let keys = store
            .signing_keys()
            .await
            .context("cannot read the signing keys")?;
        let plain_kids: Vec<SigningKeyId> = keys
            .iter()
            .filter(|key| KeySealer::is_plain(&key.sealed_private_key))
            .map(|key| key.kid.clone())
            .collect();
        let sealed_keys = keys.len() - plain_kids.len();
        let file_beside_database = file_beside_database(database_url)?;
        let may_generate = match generate {
            Generate::Never => false,
            Generate::OnFreshDatabase => keys.is_empty(),
            Generate::UnlessSealedKeysExist => sealed_keys == 0,
        };
        let (sealer, source) = match (configured, &file_beside_database) {
            (Some(key), _) => (
                KeySealer::from_encoded_key(key)
                    .context("invalid key-encryption key of signing keys")?,
                KekSource::Configured,
            ),
            (None, Some(path)) => beside_database(path, may_generate)?,
            (None, None) => (KeySealer::plain(), KekSource::None),
        };
        Ok(KeyEncryption {
            sealer,
            source,
            file_beside_database,
            plain_kids,
            sealed_keys,
            keys,
        })
    }

    /// The sealer `serve` runs with: resolved (the key file of a fresh SQLite
    /// database generated), checked and announced.
    pub async fn sealer_for_serving(
        database_url: &str,
        configured: Option<&SecretBox<str>>,
        store: &dyn Store,
    ) -> anyhow::Result<KeySealer> {
        let encryption =
            Self::resolve(database_url, configured, store, Generate::OnFreshDatabase).await?;
        encryption.check_for_serving()?;
        encryption.log_for_serving();
        Ok(encryption.sealer)
    }

    /// Refuses what `serve` must not run with: `plain:` keys under a
    /// key-encryption key, sealed keys without one or with another one.
    pub fn check_for_serving(&self) -> anyhow::Result<()> {
        if let Some(refusal) = self.unsealed_refusal() {
            anyhow::bail!(refusal);
        }
        if !self.sealer.encrypts() && self.sealed_keys > 0 {
            anyhow::bail!(self.missing_key_message());
        }
        for key in &self.keys {
            if let Err(SealError::WrongKey) =
                self.sealer.open(key.kid.as_str(), &key.sealed_private_key)
            {
                let which = match &self.source {
                    KekSource::BesideDatabase { path, .. } => {
                        format!("the key-encryption key in {}", path.display())
                    }
                    _ => "the configured key-encryption key".to_owned(),
                };
                anyhow::bail!(
                    "{which} does not open signing key {}: it was sealed with another one",
                    key.kid
                );
            }
        }
        Ok(())
    }

    /// What `serve` says at start about signing keys at rest.
    pub fn log_for_serving(&self) {
        match (&self.source, &self.file_beside_database) {
            (
                KekSource::BesideDatabase {
                    generated: true, ..
                },
                _,
            ) => self.log_generated(),
            (KekSource::BesideDatabase { path, .. }, _) => tracing::info!(
                "signing keys are sealed with the key-encryption key in {}",
                path.display()
            ),
            (KekSource::Configured, _) => {}
            (KekSource::None, Some(path)) if !self.plain_kids.is_empty() => tracing::warn!(
                "signing keys are stored unencrypted in the database: run `assetpool \
                 signing-keys seal` to seal them with a key-encryption key kept in {} (or \
                 configure one with --signing-key-kek-file)",
                path.display()
            ),
            (KekSource::None, _) => tracing::warn!(
                "no key-encryption key configured: signing keys are stored unencrypted in the \
                 database; set ASSETPOOL_SIGNING_KEY_KEK or --signing-key-kek-file to the same \
                 key on every server, then run `assetpool signing-keys seal`"
            ),
        }
    }

    /// Says, if this command generated the key file, where it is and what to
    /// do with it (once in the life of a database).
    pub fn log_generated(&self) {
        if let KekSource::BesideDatabase {
            path,
            generated: true,
        } = &self.source
        {
            tracing::warn!(
                "generated a key-encryption key for signing keys in {} (mode 0600): back it up \
                 apart from the database, which cannot be used without it; to keep it \
                 elsewhere, move it and pass its new path with --signing-key-kek-file (or \
                 ASSETPOOL_SIGNING_KEY_KEK_FILE)",
                path.display()
            );
        }
    }

    /// Why sealed keys cannot be opened here.
    pub fn missing_key_message(&self) -> String {
        let missing = SealError::KeyEncryptionKeyMissing.to_string();
        match &self.file_beside_database {
            Some(path) => format!("{missing} (no key file at {})", path.display()),
            None => missing,
        }
    }

    fn unsealed_refusal(&self) -> Option<String> {
        if !self.sealer.encrypts() || self.plain_kids.is_empty() {
            return None;
        }
        let (keys, them) = match self.plain_kids.as_slice() {
            [kid] => (format!("signing key {kid} is"), "it"),
            kids => {
                let kids: Vec<&str> = kids.iter().map(SigningKeyId::as_str).collect();
                (format!("signing keys {} are", kids.join(", ")), "them")
            }
        };
        Some(format!(
            "{keys} stored unencrypted although a key-encryption key is configured; run \
             `assetpool signing-keys seal` with that key to encrypt {them}"
        ))
    }
}

/// The key file beside a SQLite database file; `None` for other databases.
pub fn file_beside_database(database_url: &str) -> anyhow::Result<Option<PathBuf>> {
    if !database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let Some(database) = SqliteStore::database_file(database_url)? else {
        return Ok(None);
    };
    let stem = database
        .file_stem()
        .map_or_else(|| "assetpool".into(), |stem| stem.to_string_lossy());
    Ok(Some(
        database.with_file_name(format!("{stem}{KEY_FILE_SUFFIX}")),
    ))
}

/// The sealer of the key file at `path`, generated if missing and allowed.
fn beside_database(path: &Path, may_generate: bool) -> anyhow::Result<(KeySealer, KekSource)> {
    let found = |key: SecretBox<str>, generated: bool| -> anyhow::Result<(KeySealer, KekSource)> {
        let sealer = KeySealer::from_encoded_key(&key)
            .with_context(|| format!("invalid key-encryption key in {}", path.display()))?;
        let source = KekSource::BesideDatabase {
            path: path.to_owned(),
            generated,
        };
        Ok((sealer, source))
    };
    if let Some(key) = read_if_present(path)? {
        return found(key, false);
    }
    if !may_generate {
        return Ok((KeySealer::plain(), KekSource::None));
    }
    match create_key_file(path)? {
        Some(key) => found(key, true),
        // Another command created it meanwhile: use theirs.
        None => match read_if_present(path)? {
            Some(key) => found(key, false),
            None => anyhow::bail!("the key file {} vanished", path.display()),
        },
    }
}

fn read_if_present(path: &Path) -> anyhow::Result<Option<SecretBox<str>>> {
    match read_key_file(path) {
        Ok(key) => Ok(Some(key)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error)
            .with_context(|| format!("cannot read the key-encryption key file {}", path.display())),
    }
}

/// Reads a key-encryption key file, warning when other users may read it.
pub fn read_key_file(path: &Path) -> std::io::Result<SecretBox<str>> {
    let text = std::fs::read_to_string(path)?;
    warn_if_open_to_others(path);
    Ok(SecretBox::from(text))
}

/// Writes a new random key to `path` unless a file is there: `None` then.
/// The key is written to a private temporary file first and linked into
/// place, so no reader ever sees a partly written key and no existing file is
/// replaced.
fn create_key_file(path: &Path) -> anyhow::Result<Option<SecretBox<str>>> {
    let key = KeySealer::generate_encoded_key();
    let file_name = path
        .file_name()
        .map_or_else(|| "signing-key.kek".into(), |name| name.to_string_lossy());
    let temporary = path.with_file_name(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let written = write_private_file(&temporary, &key);
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            // The link must be on disk before anything is sealed with the key.
            sync_folder(path).with_context(|| {
                format!(
                    "cannot write the key-encryption key file {}",
                    path.display()
                )
            })?;
            Ok(Some(key))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(error) => Err(error).with_context(|| {
            format!(
                "cannot create the key-encryption key file {}",
                path.display()
            )
        }),
    }
}

/// Flushes the folder holding `path` (its new entry) to disk.
fn sync_folder(path: &Path) -> std::io::Result<()> {
    match path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        Some(folder) => std::fs::File::open(folder)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

fn write_private_file(path: &Path, key: &SecretBox<str>) -> std::io::Result<()> {
    use secrecy::ExposeSecret as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(key.expose_secret().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_open_to_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "the key-encryption key file {} can be read by other users (mode {mode:04o}): \
             restrict it with `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_open_to_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_sits_beside_a_sqlite_database_file() {
        let beside = |url: &str| file_beside_database(url).unwrap();
        assert_eq!(
            beside("sqlite://assetpool-data/assetpool.db"),
            Some(PathBuf::from("assetpool-data/assetpool-signing-key.kek"))
        );
        assert_eq!(
            beside("sqlite:///var/lib/auth/main.sqlite?mode=rwc"),
            Some(PathBuf::from("/var/lib/auth/main-signing-key.kek"))
        );
        assert_eq!(beside("sqlite::memory:"), None);
        assert_eq!(beside("postgres://postgres@127.0.0.1/test"), None);
    }
}
