//! `assetpool export` and `assetpool import`: all durable state as JSON lines,
//! to move between storage backends (the format is documented in
//! [`assetpool_core::export`]).
//!
//! Export writes a header line and one record per line on stdout, and the
//! counts on stderr. It leaves the private signing keys out unless asked
//! (`--include-signing-keys`); then it seals those stored unencrypted with
//! the database's key-encryption key, when there is one.
//!
//! Import checks every line of stdin before touching the database (a
//! malformed line fails as `line N: ...`, never repeating a value from it),
//! then reads it again, a batch at a time, sealing signing keys stored
//! unencrypted with the database's key-encryption key, and writes everything
//! in one transaction into an empty database. Memory stays flat whatever the
//! size of the export: stdin redirected from a file is read in place, twice;
//! a pipe is first copied to an unnamed temporary file (mode 0600, gone when
//! the command ends).

use super::output::{print_json, say};
use super::{redact_url, Context};
use crate::key_encryption::Generate;
use anyhow::{anyhow, Context as _};
use assetpool_core::export::{ExportHeader, ExportRecord};
use assetpool_core::sealer::SealError;
use assetpool_core::store::{ExportSink, ImportSource, StoreError, DATABASE_NOT_EMPTY};
use assetpool_core::KeySealer;
use clap::Args;
use serde::Serialize;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Also write the private keys that sign access tokens (sealed with the
    /// key-encryption key when there is one; unencrypted otherwise), so that
    /// tokens issued before the move stay valid after it. Without it, the
    /// export holds no secret that signs anything: the new database makes a
    /// new signing key and earlier access tokens are refused (clients refresh).
    #[arg(long)]
    include_signing_keys: bool,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// How many records of each kind.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    records: usize,
    settings: usize,
    applications: usize,
    api_keys: usize,
    users: usize,
    application_members: usize,
    signing_keys: usize,
    sessions: usize,
    refresh_tokens: usize,
    alerts: usize,
    audit_entries: usize,
}

impl Counts {
    fn add(&mut self, record: &ExportRecord) {
        let count = match record {
            ExportRecord::Setting(_) => &mut self.settings,
            ExportRecord::Application(_) => &mut self.applications,
            ExportRecord::ApiKey(_) => &mut self.api_keys,
            ExportRecord::User(_) => &mut self.users,
            ExportRecord::SigningKey(_) => &mut self.signing_keys,
            ExportRecord::Session(_) => &mut self.sessions,
            ExportRecord::RefreshToken(_) => &mut self.refresh_tokens,
            ExportRecord::ApplicationMember(_) => &mut self.application_members,
            ExportRecord::Alert(_) => &mut self.alerts,
            ExportRecord::AuditEntry(_) => &mut self.audit_entries,
            // The chain's head is one line of every export, not counted.
            ExportRecord::AuditChain(_) => return,
        };
        *count += 1;
        self.records += 1;
    }

    /// `12 records (2 settings, 1 application, ...)`.
    fn describe(&self) -> String {
        let counted = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        format!(
            "{} ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            counted(self.records, "record", "records"),
            counted(self.settings, "setting", "settings"),
            counted(self.applications, "application", "applications"),
            counted(self.api_keys, "API key", "API keys"),
            counted(self.users, "user", "users"),
            counted(
                self.application_members,
                "application member",
                "application members",
            ),
            counted(self.signing_keys, "signing key", "signing keys"),
            counted(self.sessions, "session", "sessions"),
            counted(self.refresh_tokens, "refresh token", "refresh tokens"),
            counted(self.alerts, "alert", "alerts"),
            counted(self.audit_entries, "audit entry", "audit entries"),
        )
    }
}

/// The sink of `export`: each record, as the database gives it, sealed or
/// left out as asked, written as one line on stdout and counted, with a
/// progress bar on a terminal. Nothing is collected: memory stays flat
/// whatever the size of the database.
struct ExportWriter {
    out: std::io::BufWriter<std::io::Stdout>,
    sealer: Option<KeySealer>,
    counts: Counts,
    left_out: usize,
    plain: usize,
    sealed: usize,
    failure: Option<std::io::Error>,
    progress: indicatif::ProgressBar,
}

impl ExportWriter {
    fn new(sealer: Option<KeySealer>) -> anyhow::Result<Self> {
        let progress = progress("records exported");
        let mut out = std::io::BufWriter::new(std::io::stdout());
        serde_json::to_writer(&mut out, &ExportHeader::current())?;
        out.write_all(b"\n")?;
        Ok(ExportWriter {
            out,
            sealer,
            counts: Counts::default(),
            left_out: 0,
            plain: 0,
            sealed: 0,
            failure: None,
            progress,
        })
    }

    fn write(&mut self, record: &ExportRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }
}

impl ExportSink for ExportWriter {
    fn record(&mut self, mut record: ExportRecord) -> Result<(), StoreError> {
        if let ExportRecord::SigningKey(key) = &mut record {
            let Some(sealer) = &self.sealer else {
                self.left_out += 1;
                return Ok(());
            };
            if sealer.encrypts() && KeySealer::is_plain(&key.sealed_private_key) {
                if let Ok(Some(value)) = sealer.reseal(key.kid.as_str(), &key.sealed_private_key) {
                    key.sealed_private_key = value;
                }
            }
            if KeySealer::is_plain(&key.sealed_private_key) {
                self.plain += 1;
            } else if KeySealer::is_encrypted(&key.sealed_private_key) {
                self.sealed += 1;
            }
        }
        if let Err(error) = self.write(&record) {
            self.failure = Some(error);
            return Err(StoreError::Other("standard output failed".to_owned()));
        }
        self.counts.add(&record);
        self.progress.inc(1);
        Ok(())
    }
}

/// A progress counter on stderr, shown only when stderr is a terminal.
fn progress(message: &'static str) -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new_spinner().with_message(message);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    progress
}

/// Runs `export`.
pub async fn export(context: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let store = context.store().await?;
    let sealer = if args.include_signing_keys {
        let encryption = context
            .key_encryption(store.as_ref(), Generate::Never)
            .await?;
        Some(encryption.sealer)
    } else {
        None
    };
    let mut writer =
        ExportWriter::new(sealer).context("cannot write the export to standard output")?;
    let exported = store.export_to(&mut writer).await;
    writer.progress.finish_and_clear();
    if let Some(failure) = writer.failure.take() {
        return Err(failure).context("cannot write the export to standard output");
    }
    exported.context("cannot read the database")?;
    writer
        .out
        .flush()
        .context("cannot write the export to standard output")?;
    let database = redact_url(&context.database_url);
    eprintln!("Exported {} from {database}.", writer.counts.describe());
    if writer.left_out > 0 {
        eprintln!(
            "Left out {} signing key(s): the new database makes its own, and access \
             tokens issued before the move are refused (clients refresh). Add \
             --include-signing-keys to move them.",
            writer.left_out
        );
    }
    if writer.plain > 0 {
        eprintln!(
            "The export holds {} signing key(s) unencrypted: keep it private, or run \
             `assetpool signing-keys seal` first (import seals them when the new database has \
             a key-encryption key).",
            writer.plain
        );
    } else if writer.sealed > 0 {
        eprintln!(
            "The signing keys stay encrypted: give the new database's servers the same key-encryption key."
        );
    }
    Ok(())
}

/// Seals `key` with `sealer`'s key-encryption key if it is stored
/// unencrypted (without one, it stays as it is), or checks that it opens
/// with it. Returns whether it was sealed.
fn seal_imported_key(
    key: &mut assetpool_core::export::ExportedSigningKey,
    sealer: &KeySealer,
) -> anyhow::Result<bool> {
    if !sealer.encrypts() {
        return Ok(false);
    }
    match sealer.reseal(key.kid.as_str(), &key.sealed_private_key) {
        Ok(Some(value)) => {
            key.sealed_private_key = value;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(SealError::WrongKey) => anyhow::bail!(
            "the export's signing key {} is sealed with another key-encryption key than \
             this database's: import with that key (--signing-key-kek-file or \
             ASSETPOOL_SIGNING_KEY_KEK)",
            key.kid
        ),
        Err(error) => anyhow::bail!("the export's signing key {}: {error}", key.kid),
    }
}

/// Summary of `import --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportSummary {
    database: String,
    #[serde(flatten)]
    counts: Counts,
    /// Signing keys of the export sealed on the way in.
    sealed_signing_keys: usize,
}

/// Runs `import`.
pub async fn import(context: &Context, args: ImportArgs) -> anyhow::Result<()> {
    // Read and check everything before touching (or creating) the database.
    let input = import_input()?;
    let scan = scan_export(&input)?;
    let database = redact_url(&context.database_url);
    let store = context.store().await?;
    // `plain:` keys are sealed with the database's key-encryption key; on a
    // fresh SQLite database that key is generated, unless the export holds
    // keys sealed with a key that only the operator can give.
    let generate = if scan.holds_sealed_keys {
        Generate::Never
    } else {
        Generate::OnFreshDatabase
    };
    let encryption = context.key_encryption(store.as_ref(), generate).await?;
    let mut source = ImportReader::new(input, &scan, encryption.sealer.clone())?;
    let imported = store.import_from(&mut source).await;
    source.progress.finish_and_clear();
    if let Some(failure) = source.failure.take() {
        // A key file generated here stays (another command may already use
        // it, and the next one will); the error line says what failed.
        return Err(failure);
    }
    match imported {
        Ok(()) => {}
        Err(StoreError::Conflict(reason)) if reason == DATABASE_NOT_EMPTY => anyhow::bail!(
            "cannot import into {database}: {reason} (import needs a database holding no data)"
        ),
        Err(error) => return Err(error).context(format!("cannot import into {database}")),
    }
    encryption.log_generated();
    let sealed_signing_keys = source.sealed;
    if args.json {
        return print_json(&ImportSummary {
            database,
            counts: scan.counts,
            sealed_signing_keys,
        });
    }
    say!("Imported into {database}: {}.", scan.counts.describe());
    if sealed_signing_keys > 0 {
        say!("Sealed {sealed_signing_keys} signing key(s) stored unencrypted in the export.");
    }
    Ok(())
}

/// Standard input as a file that can be read twice: itself when it is a
/// regular file (`< export.jsonl`), otherwise (a pipe, a terminal) a copy in
/// an unnamed temporary file.
fn import_input() -> anyhow::Result<File> {
    use std::os::fd::AsFd as _;
    let stdin = std::io::stdin();
    let cannot_read = "cannot read standard input";
    let own = File::from(stdin.as_fd().try_clone_to_owned().context(cannot_read)?);
    if own.metadata().is_ok_and(|metadata| metadata.is_file()) {
        return Ok(own);
    }
    let mut copy = tempfile::tempfile().context("cannot create a temporary file for the import")?;
    std::io::copy(&mut stdin.lock(), &mut copy).context(cannot_read)?;
    copy.seek(SeekFrom::Start(0))
        .context("cannot read the temporary copy of the import")?;
    Ok(copy)
}

/// Where the records of one kind lie in the input: from the first one's
/// line to the end of the last one's.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

/// What the checking pass learned of an export.
#[derive(Debug, Default)]
struct Scan {
    counts: Counts,
    holds_sealed_keys: bool,
    /// By kind, in import order ([`ExportRecord::rank`]).
    spans: std::collections::BTreeMap<u8, Span>,
}

/// Checks an export from its current position: a header line, then one
/// record per line (blank lines are skipped). Leaves `input` where it was.
fn scan_export(input: &File) -> anyhow::Result<Scan> {
    let mut reader = BufReader::new(input);
    let origin = reader
        .stream_position()
        .context("cannot read standard input")?;
    let scan = scan_lines(&mut reader, origin)?;
    reader
        .seek(SeekFrom::Start(origin))
        .context("cannot read standard input")?;
    Ok(scan)
}

/// The checking pass over `reader`, whose first byte is at `origin`.
fn scan_lines(reader: &mut impl BufRead, origin: u64) -> anyhow::Result<Scan> {
    let mut scan = Scan::default();
    let mut header_seen = false;
    let mut position = origin;
    let mut line = String::new();
    let read = progress("records checked");
    for number in 1.. {
        line.clear();
        let length = reader
            .read_line(&mut line)
            .with_context(|| format!("line {number}: cannot read standard input"))?;
        if length == 0 {
            break;
        }
        let start = position;
        position += length as u64;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if !header_seen {
            let header: ExportHeader = serde_json::from_str(text).map_err(|_| {
                anyhow!(
                    "line {number}: not an assetpool export (the first line must be {})",
                    header_line()
                )
            })?;
            header
                .check()
                .map_err(|reason| anyhow!("line {number}: {reason}"))?;
            header_seen = true;
            continue;
        }
        let record: ExportRecord = serde_json::from_str(text)
            .map_err(|error| anyhow!("line {number}: {}", describe_json_error(&error)))?;
        if matches!(&record, ExportRecord::SigningKey(key)
            if KeySealer::is_encrypted(&key.sealed_private_key))
        {
            scan.holds_sealed_keys = true;
        }
        scan.counts.add(&record);
        let span = scan
            .spans
            .entry(record.rank())
            .or_insert(Span { start, end: start });
        span.end = position;
        read.inc(1);
    }
    read.finish_and_clear();
    if !header_seen {
        anyhow::bail!(
            "nothing to import on standard input (expected the output of `assetpool export`)"
        );
    }
    Ok(scan)
}

/// Records per batch given to the store.
const IMPORT_BATCH: usize = 1000;

/// The second pass of `import`: the checked input read kind by kind (an
/// export lists each kind in one run, so that is one sequential read; a
/// file in another order is read once per kind), a batch at a time, signing
/// keys sealed on the way.
struct ImportReader {
    reader: BufReader<File>,
    /// What is left to read: the kinds, in import order, and their spans.
    spans: std::vec::IntoIter<(u8, Span)>,
    current: Option<(u8, Span)>,
    position: u64,
    sealer: KeySealer,
    sealed: usize,
    failure: Option<anyhow::Error>,
    progress: indicatif::ProgressBar,
    line: String,
}

impl ImportReader {
    fn new(input: File, scan: &Scan, sealer: KeySealer) -> anyhow::Result<Self> {
        let mut reader = BufReader::new(input);
        let position = reader
            .stream_position()
            .context("cannot read standard input")?;
        let progress = indicatif::ProgressBar::new(scan.counts.records as u64)
            .with_message("records written (one transaction)");
        progress.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {msg} ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let spans: Vec<(u8, Span)> = scan
            .spans
            .iter()
            .map(|(rank, span)| (*rank, *span))
            .collect();
        let mut spans = spans.into_iter();
        let current = spans.next();
        Ok(ImportReader {
            reader,
            spans,
            current,
            position,
            sealer,
            sealed: 0,
            failure: None,
            progress,
            line: String::new(),
        })
    }

    /// Fills `batch` from the current kind's span; moves to the next kind
    /// at the span's end.
    fn fill(&mut self, batch: &mut Vec<ExportRecord>) -> anyhow::Result<()> {
        while batch.len() < IMPORT_BATCH {
            let Some((rank, span)) = self.current else {
                return Ok(());
            };
            if self.position >= span.end {
                self.current = self.spans.next();
                if let Some((_, next)) = self.current {
                    if next.start != self.position {
                        self.reader.seek(SeekFrom::Start(next.start))?;
                        self.position = next.start;
                    }
                }
                continue;
            }
            if self.position < span.start {
                self.reader.seek(SeekFrom::Start(span.start))?;
                self.position = span.start;
            }
            self.line.clear();
            let length = self.reader.read_line(&mut self.line)?;
            if length == 0 {
                anyhow::bail!("standard input changed while it was imported");
            }
            self.position += length as u64;
            let text = self.line.trim();
            // The header line lies before every span.
            if text.is_empty() {
                continue;
            }
            let mut record: ExportRecord = serde_json::from_str(text)
                .map_err(|_| anyhow!("standard input changed while it was imported"))?;
            if record.rank() != rank {
                continue;
            }
            if let ExportRecord::SigningKey(key) = &mut record {
                if seal_imported_key(key, &self.sealer)? {
                    self.sealed += 1;
                }
            }
            batch.push(record);
        }
        Ok(())
    }
}

impl ImportSource for ImportReader {
    fn next_batch(&mut self) -> Result<Option<Vec<ExportRecord>>, StoreError> {
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        if let Err(error) = self.fill(&mut batch) {
            self.failure = Some(error);
            return Err(StoreError::Other("the import stopped".to_owned()));
        }
        self.progress.inc(batch.len() as u64);
        Ok((!batch.is_empty()).then_some(batch))
    }
}

fn header_line() -> String {
    serde_json::to_string(&ExportHeader::current()).unwrap_or_default()
}

/// A JSON error without its position in the line (given as a column) and
/// without any quoted value: serde quotes the offending string, which may be
/// a secret.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    format!("{} (column {})", redact_quoted(message), error.column())
}

/// Replaces the content of every double-quoted string (with `\` escapes) by `…`.
fn redact_quoted(message: &str) -> String {
    let mut redacted = String::with_capacity(message.len());
    let mut characters = message.chars();
    while let Some(character) = characters.next() {
        redacted.push(character);
        if character != '"' {
            continue;
        }
        redacted.push_str("…\"");
        let mut escaped = false;
        for inner in characters.by_ref() {
            match (escaped, inner) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => break,
                (false, _) => {}
            }
        }
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> anyhow::Result<Scan> {
        scan_lines(&mut std::io::Cursor::new(text.as_bytes().to_vec()), 0)
    }

    fn error_of(text: &str) -> String {
        match read(text) {
            Ok(scan) => format!("unexpectedly parsed {} records", scan.counts.records),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn reads_a_header_then_records_skipping_blank_lines() {
        let text = format!(
            "{}\n\n{}\n",
            header_line(),
            r#"{"type":"setting","name":"issuer","value":"http://x"}"#
        );
        let scan = read(&text).map_err(|error| error.to_string());
        assert_eq!(scan.map(|scan| scan.counts.records), Ok(1));
    }

    #[test]
    fn errors_name_the_line_and_echo_no_value() {
        let secret = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$secret-hash";
        let text = format!(
            "{}\n{{\"type\":\"setting\",\"name\":\"a\",\"value\":\"b\"}}\n{{\"type\":\"user\",\"id\":\"usr_1\",\"email\":\"e\",\"password_hash\":\"{secret}\",\"admin\":false,\"disabled\":false,\"created_at\":\"{secret}\"}}\n",
            header_line()
        );
        let error = error_of(&text);
        assert!(error.starts_with("line 3: invalid type: string"), "{error}");
        assert!(!error.contains("secret-hash"), "{error}");
        assert!(error_of("{not json\n").starts_with("line 1: not an assetpool export"));
        let future = r#"{"type":"header","format":"assetpool-export","version":9}"#;
        assert!(error_of(future).contains("line 1: export version 9"));
        assert!(error_of("\n\n").starts_with("nothing to import"));
        let truncated = format!("{}\n{{\"type\":\"user\"", header_line());
        assert!(error_of(&truncated).starts_with("line 2: "), "{truncated}");
    }

    #[test]
    fn quoted_values_are_redacted() {
        assert_eq!(
            redact_quoted(r#"invalid value: string "a\"b", expected x"#),
            r#"invalid value: string "…", expected x"#
        );
        assert_eq!(
            redact_quoted("missing field `email`"),
            "missing field `email`"
        );
    }
}
