//! `assetpool audit list`: the append-only log of admin actions, newest first;
//! `assetpool audit verify`: the check of its hash chain.

use super::backend::Backend;
use super::output::{print_json, print_table, time};
use super::Context;
use assetpool_core::admin::MAX_PAGE;
use assetpool_wire::AuditEntryResponse;
use clap::Subcommand;

/// Longest detail shown in the human list.
const DETAIL_CHARS: usize = 60;

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Lists admin actions (actor, time, action, target, outcome), newest first.
    List {
        /// Most entries to list.
        #[arg(long, default_value_t = 100, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        /// Only entries older than this entry id (to page on).
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
        before: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks the audit log's hash chain: prints `ok` and the number of
    /// entries checked, or names the first entry that was changed, removed or
    /// inserted and exits non-zero.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Up to `limit` entries older than `before`, page by page.
async fn collect(
    backend: &Backend,
    mut before: Option<i64>,
    limit: u32,
) -> anyhow::Result<Vec<AuditEntryResponse>> {
    let mut entries = Vec::new();
    loop {
        let left = limit.saturating_sub(u32::try_from(entries.len()).unwrap_or(u32::MAX));
        if left == 0 {
            break;
        }
        let page = backend.list_audit(before, left.min(MAX_PAGE)).await?;
        entries.extend(page.items);
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    entries.truncate(limit as usize);
    Ok(entries)
}

fn outcome(entry: &AuditEntryResponse) -> String {
    match &entry.error {
        Some(error) => format!("{} ({error})", entry.outcome),
        None => entry.outcome.clone(),
    }
}

fn detail(entry: &AuditEntryResponse) -> String {
    let text = match &entry.detail {
        serde_json::Value::Object(fields) if fields.is_empty() => return "-".to_owned(),
        serde_json::Value::Null => return "-".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() <= DETAIL_CHARS {
        return text;
    }
    let cut: String = text.chars().take(DETAIL_CHARS - 1).collect();
    format!("{cut}…")
}

fn print_entries(entries: &[AuditEntryResponse]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                entry.id.to_string(),
                time(Some(entry.at)),
                entry.actor.clone(),
                entry.action.clone(),
                if entry.target.is_empty() {
                    "-".to_owned()
                } else {
                    entry.target.clone()
                },
                outcome(entry),
                detail(entry),
            ]
        })
        .collect();
    print_table(
        &["ID", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"],
        &rows,
    );
}

/// Runs an audit command.
pub async fn run(context: &Context, command: AuditCommand) -> anyhow::Result<()> {
    let backend = context.backend().await?;
    match command {
        AuditCommand::List {
            limit,
            before,
            json,
        } => {
            let entries = collect(&backend, before, limit).await?;
            if json {
                return print_json(&entries);
            }
            print_entries(&entries);
            Ok(())
        }
        AuditCommand::Verify { json } => verify(&backend, json).await,
    }
}

async fn verify(backend: &Backend, json: bool) -> anyhow::Result<()> {
    let verification = backend.verify_audit().await?;
    if let Some(broken) = verification.broken {
        anyhow::bail!("the audit log's hash chain is broken: {broken}");
    }
    if json {
        return print_json(&serde_json::json!({
            "ok": true,
            "checked": verification.checked,
            "startedAfter": verification.started_after,
            "lastHash": verification.last_hash,
        }));
    }
    println!(
        "ok: {} entries checked, last hash {}",
        verification.checked, verification.last_hash
    );
    if verification.started_after > 0 {
        println!(
            "entries up to {} were written before the chain began and are not covered",
            verification.started_after
        );
    }
    Ok(())
}
