//! The database file and its folder on disk, before SQLite opens them.
//!
//! The database holds password hashes, API key and refresh token hashes and
//! the signing keys, so a folder created here is private to the user (0700)
//! and so is a new database file (0600), whatever the umask: SQLite gives the
//! `-wal` and `-shm` files it creates the mode of the database file. An
//! existing folder is left as it is (the operator chose it). An existing
//! database file that other users may read or write is left as it is too, with
//! a warning at each open; group access is not warned about, as granting it to
//! a backup group can be deliberate.

use assetpool_core::store::{StoreError, StoreResult};
use std::path::Path;

/// Whether a SQLite URL names an in-memory database (no file).
pub(crate) fn is_in_memory(url: &str) -> bool {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:"
        || query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("mode=memory"))
}

/// Creates the missing folders of `path` (0700) and, if missing, an empty
/// database file (0600); warns about an existing file other users can access.
pub(crate) fn prepare_database_file(path: &Path) -> StoreResult<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        create_private_folders(parent).map_err(|error| {
            StoreError::Unavailable(format!("cannot create {}: {error}", parent.display()))
        })?;
    }
    match create_private_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            warn_if_open_to_others(path);
            Ok(())
        }
        Err(error) => Err(StoreError::Unavailable(format!(
            "cannot create {}: {error}",
            path.display()
        ))),
    }
}

#[cfg(unix)]
fn create_private_folders(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Only folders created here get the mode (minus the umask, which can
    // only take permissions away); existing ones are not touched.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
}

#[cfg(not(unix))]
fn create_private_folders(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)
}

/// Creates an empty file with mode 0600 exactly; `AlreadyExists` if it exists.
#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask may have taken the owner's write permission away.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.sync_all()
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}

#[cfg(unix)]
fn warn_if_open_to_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if metadata.is_file() && mode & 0o007 != 0 {
        tracing::warn!(
            "the database {} is open to every local user (mode {mode:04o}) and holds password \
             hashes and signing keys: restrict it with `chmod 600 {}` (and its -wal and -shm \
             files)",
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
    fn in_memory_urls_are_recognised() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://file.db?mode=memory&cache=shared",
        ] {
            assert!(is_in_memory(url), "{url}");
        }
        for url in [
            "sqlite://assetpool-data/assetpool.db",
            "sqlite:///tmp/x.db?mode=rwc",
        ] {
            assert!(!is_in_memory(url), "{url}");
        }
    }
}
