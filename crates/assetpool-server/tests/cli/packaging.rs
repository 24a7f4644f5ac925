//! The packaged config file (`packaging/assetpool.toml`): it names every
//! setting of `serve`, and every key it names, uncommented, is accepted.

use crate::helpers::{command, output, stderr, Db};
use clap::CommandFactory as _;

/// Settings that are not config-file keys: the file itself, the demo switch,
/// and secrets, which the file tells to give as files (`*_FILE`).
const NOT_IN_THE_FILE: &[&str] = &[
    "config",
    "demo",
    "help",
    "version",
    "alert-webhook-secret",
    "leak-report-secret",
];

fn packaged_config() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/assetpool.toml"
    );
    std::fs::read_to_string(path).expect("packaging/assetpool.toml")
}

/// The key of a setting line, commented (`# key = value`) or not.
fn setting_key(line: &str) -> Option<&str> {
    let line = line.strip_prefix("# ").unwrap_or(line);
    let (key, _) = line.split_once(" = ")?;
    key.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        .then_some(key)
}

#[test]
fn the_packaged_config_names_every_setting_of_serve() {
    let config = packaged_config();
    let keys: Vec<&str> = config.lines().filter_map(setting_key).collect();
    let cli = assetpool_server::cli::Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve");
    let missing: Vec<String> = serve
        .get_arguments()
        .filter_map(|argument| argument.get_long())
        .filter(|long| !NOT_IN_THE_FILE.contains(long) && !keys.contains(long))
        .map(str::to_owned)
        .collect();
    assert!(
        missing.is_empty(),
        "settings of serve missing from packaging/assetpool.toml: {missing:?}"
    );
}

#[test]
fn every_key_of_the_packaged_config_is_accepted() {
    let db = Db::new();
    let kek = db.path().join("signing-key.kek");
    std::fs::write(&kek, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let mut uncommented = String::new();
    for line in packaged_config().lines() {
        let line = match setting_key(line) {
            Some("database") => format!("database = \"{}\"", db.url),
            Some("signing-key-kek-file") => format!("signing-key-kek-file = {:?}", kek),
            Some(_) => line.strip_prefix("# ").unwrap_or(line).to_owned(),
            None => line.to_owned(),
        };
        uncommented.push_str(&line);
        uncommented.push('\n');
    }
    let path = db.path().join("assetpool.toml");
    std::fs::write(&path, uncommented).unwrap();
    let mut migrate = command(db.path());
    migrate.arg("--config").arg(&path).arg("migrate");
    let migrated = output(migrate, None);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
}
