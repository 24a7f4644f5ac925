//! `assetpool signing-keys ...`

use super::output::{print_json, print_table, time};
use super::Context;
use clap::Subcommand;

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
}

/// Runs a signing key command.
pub async fn run(context: &Context, command: SigningKeysCommand) -> anyhow::Result<()> {
    let admin = context.admin().await?;
    match command {
        SigningKeysCommand::List { json } => {
            let keys = admin.signing_keys().await?;
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
        SigningKeysCommand::Rotate { json } => {
            let key = admin.rotate_signing_key().await?;
            if json {
                return print_json(&key);
            }
            println!(
                "New tokens are signed with {}; earlier keys stay published until their tokens expire.",
                key.kid
            );
            Ok(())
        }
    }
}
