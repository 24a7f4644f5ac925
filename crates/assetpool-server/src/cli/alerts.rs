//! `assetpool alerts ...`: lists and acknowledges alerts on suspicious use.

use super::backend::Backend;
use super::output::{print_json, print_table, say, time};
use super::Context;
use assetpool_core::admin::MAX_PAGE;
use assetpool_core::ids::AlertId;
use assetpool_core::period::Period;
use assetpool_wire::AlertResponse;
use clap::Subcommand;

/// Longest evidence summary in the human list.
const EVIDENCE_CHARS: usize = 60;

/// Alert commands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Lists alerts, newest first.
    List {
        /// Only alerts seen within this time: a number and an optional unit
        /// s, m, h, d or w (e.g. 30m, 24h, 7d; a bare number is seconds).
        #[arg(long, value_name = "DURATION", value_parser = Period::parse)]
        since: Option<Period>,
        /// Most alerts to list.
        #[arg(long, default_value_t = 100, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledges an alert: a new trigger of its rule and subject opens a new alert.
    Ack {
        /// Alert id (`alr_...`).
        id: AlertId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Every alert seen within `since`, newest first, up to `limit` (page by page).
async fn collect(
    backend: &Backend,
    since: Option<Period>,
    limit: u32,
) -> anyhow::Result<Vec<AlertResponse>> {
    let mut alerts = Vec::new();
    let mut before = None;
    loop {
        let left = limit.saturating_sub(u32::try_from(alerts.len()).unwrap_or(u32::MAX));
        if left == 0 {
            break;
        }
        let page = backend
            .list_alerts(since, before, left.min(MAX_PAGE))
            .await?;
        alerts.extend(page.items);
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    alerts.truncate(limit as usize);
    Ok(alerts)
}

/// `key=value` pairs of the evidence object, cut to a short line.
pub fn evidence_summary(evidence: &serde_json::Value) -> String {
    let text = match evidence {
        serde_json::Value::Object(fields) if fields.is_empty() => "-".to_owned(),
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => format!("{name}={text}"),
                other => format!("{name}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() <= EVIDENCE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(EVIDENCE_CHARS - 1).collect();
    format!("{cut}…")
}

fn acknowledged(alert: &AlertResponse) -> String {
    match (&alert.acknowledged_at, &alert.acknowledged_by) {
        (Some(_), Some(by)) => format!("yes ({by})"),
        (Some(_), None) => "yes".to_owned(),
        (None, _) => "no".to_owned(),
    }
}

fn print_alerts(alerts: &[AlertResponse]) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|alert| {
            vec![
                alert.id.clone(),
                alert.rule.clone(),
                alert.subject.clone(),
                alert.occurrences.to_string(),
                time(Some(alert.first_seen_at)),
                time(Some(alert.last_seen_at)),
                acknowledged(alert),
                evidence_summary(&alert.evidence),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "RULE",
            "SUBJECT",
            "COUNT",
            "FIRST SEEN",
            "LAST SEEN",
            "ACKED",
            "EVIDENCE",
        ],
        &rows,
    );
}

/// Runs an alert command.
pub async fn run(context: &Context, command: AlertsCommand) -> anyhow::Result<()> {
    let backend = context.backend().await?;
    match command {
        AlertsCommand::List { since, limit, json } => {
            let alerts = collect(&backend, since, limit).await?;
            if json {
                return print_json(&alerts);
            }
            print_alerts(&alerts);
            Ok(())
        }
        AlertsCommand::Ack { id, json } => {
            let alert = backend.ack_alert(&id).await?;
            if json {
                return print_json(&alert);
            }
            say!(
                "Acknowledged alert {} ({} on {}, {} occurrences).",
                alert.id,
                alert.rule,
                alert.subject,
                alert.occurrences
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_summarised_on_one_short_line() {
        let evidence = serde_json::json!({"address": "10.0.0.1", "count": 3});
        assert_eq!(evidence_summary(&evidence), "address=10.0.0.1, count=3");
        assert_eq!(evidence_summary(&serde_json::json!({})), "-");
        let long = serde_json::json!({"text": "x".repeat(200)});
        let summary = evidence_summary(&long);
        assert_eq!(summary.chars().count(), EVIDENCE_CHARS);
        assert!(summary.ends_with('…'));
    }
}
