//! Printing: one JSON document with `--json`, aligned columns otherwise.
//!
//! Every line of human output goes through [`print_line`] (the [`say!`]
//! macro, [`print_table`]), which escapes control characters
//! ([`assetpool_wire::text::escape_control`]): names, emails, subjects and
//! reasons come from the database, where rows written before the input
//! rule, imported or written by other means may hold terminal escapes. JSON
//! output needs no such step: its strings escape control characters.

use assetpool_wire::text::escape_control;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Prints one line of human output on stdout, control characters escaped
/// (`say!()` prints an empty line).
macro_rules! say {
    () => {
        $crate::cli::output::print_line("")
    };
    ($($argument:tt)+) => {
        $crate::cli::output::print_line(&format!($($argument)+))
    };
}
pub(crate) use say;

/// Prints `text` and a line break on stdout, control characters escaped.
pub fn print_line(text: &str) {
    println!("{}", escape_control(text));
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A time as RFC 3339 (seconds), or `-`.
pub fn time(value: Option<DateTime<Utc>>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |value| value.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Prints rows under a header, columns padded to their widest cell, control
/// characters escaped in every cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| escape_control(cell).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(index, cell)| format!("{cell:<width$}", width = widths[index]))
            .collect();
        print_line(padded.join("  ").trim_end());
    };
    line(header.iter().map(|cell| (*cell).to_owned()).collect());
    for row in &rows {
        line(row.clone());
    }
    if rows.is_empty() {
        print_line("(none)");
    }
}
