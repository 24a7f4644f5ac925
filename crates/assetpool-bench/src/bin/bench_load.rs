//! `bench-load`: the measurements `wrk` cannot make.
//!
//! - `argon2`: Argon2id verifications per second on one thread with given
//!   parameters (run it pinned to one core: the bound per core);
//! - `login`: logins over keep-alive connections for a while, counting
//!   answers by status, with latency percentiles of the 200s and the 503s;
//! - `revoke`: for each key of `revoke.txt`, polls `GET /v1/resource` with it
//!   while `assetpool keys revoke ID` runs, and times the first 401
//!   `api_key_revoked`.
//!
//! It speaks plain HTTP/1.1 over one TCP connection per client, which is
//! enough against assetpool on loopback.

use anyhow::Context as _;
use assetpool_core::password::{Argon2Settings, PasswordHasher};
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Load drivers of the benchmark.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Argon2id verifications per second on one thread.
    Argon2 {
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Memory in KiB.
        #[arg(long, default_value_t = 19_456)]
        memory_kib: u32,
        /// Iterations.
        #[arg(long, default_value_t = 2)]
        iterations: u32,
        /// Lanes.
        #[arg(long, default_value_t = 1)]
        parallelism: u32,
    },
    /// Logins for a while over keep-alive connections.
    Login {
        /// Server address, HOST:PORT.
        #[arg(long)]
        addr: String,
        /// `KEY EMAIL PASSWORD` lines.
        #[arg(long)]
        file: PathBuf,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Milliseconds a client waits after a 503 before its next attempt.
        #[arg(long, default_value_t = 0)]
        pause_after_503_ms: u64,
    },
    /// Time from `assetpool keys revoke` to the first 401 `api_key_revoked`.
    Revoke {
        /// Server address, HOST:PORT.
        #[arg(long)]
        addr: String,
        /// `KEY_ID KEY TOKEN` lines.
        #[arg(long)]
        file: PathBuf,
        /// The `assetpool` binary.
        #[arg(long)]
        assetpool: PathBuf,
        /// The server's database URL.
        #[arg(long)]
        database: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Argon2 {
            seconds,
            memory_kib,
            iterations,
            parallelism,
        } => argon2(
            seconds,
            Argon2Settings {
                memory_kib,
                iterations,
                parallelism,
            },
        ),
        Command::Login {
            addr,
            file,
            connections,
            seconds,
            pause_after_503_ms,
        } => assetpool_bench::runtime()?.block_on(login(
            addr,
            file,
            connections,
            seconds,
            Duration::from_millis(pause_after_503_ms),
        )),
        Command::Revoke {
            addr,
            file,
            assetpool,
            database,
        } => assetpool_bench::runtime()?.block_on(revoke(addr, file, assetpool, database)),
    }
}

fn argon2(seconds: f64, settings: Argon2Settings) -> anyhow::Result<()> {
    let hasher = PasswordHasher::new(settings)?;
    let password = SecretString::from("bench-password-correct-horse-battery");
    let stored = hasher.hash(&password)?;
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        hasher.verify(&password, &stored)?;
        done += 1;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!(
        "RESULT argon2 m={} t={} p={} verifications={done} per_second={rate:.2}",
        settings.memory_kib, settings.iterations, settings.parallelism
    );
    Ok(())
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    addr: String,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

/// A parsed answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Connection {
    fn new(addr: &str) -> Self {
        Connection {
            addr: addr.to_owned(),
            stream: None,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and reads one answer; reconnects on the next call after an error.
    async fn send(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        let result = self.exchange(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buffer.clear();
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("not connected"))?;
        stream.write_all(request).await?;
        let head_end = loop {
            if let Some(position) = find(&self.buffer, b"\r\n\r\n") {
                break position + 4;
            }
            read_more(stream, &mut self.buffer).await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad status line"))?;
        let mut length = 0usize;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                } else if name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        while self.buffer.len() < head_end + length {
            read_more(stream, &mut self.buffer).await?;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        if close {
            self.stream = None;
        }
        Ok(Answer { status, body })
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 4096];
    let read = stream.read(&mut chunk).await?;
    anyhow::ensure!(read > 0, "connection closed");
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn lines(path: &PathBuf) -> anyhow::Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect())
}

/// Percentile of sorted `values` (in seconds), in milliseconds.
fn percentile_ms(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (fraction * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] * 1000.0
}

async fn login(
    addr: String,
    file: PathBuf,
    connections: usize,
    seconds: f64,
    pause_after_503: Duration,
) -> anyhow::Result<()> {
    let logins = lines(&file)?;
    anyhow::ensure!(
        logins.iter().all(|fields| fields.len() == 3) && !logins.is_empty(),
        "{} must hold KEY EMAIL PASSWORD lines",
        file.display()
    );
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..connections.max(1) {
        let fields = &logins[client % logins.len()];
        let body = serde_json::json!({"username": fields[1], "password": fields[2]}).to_string();
        let request = format!(
            "POST /api/authentication/login HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            fields[0],
            body.len()
        )
        .into_bytes();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::new(&addr);
            let mut seen: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match connection.send(&request).await {
                    Ok(answer) => {
                        seen.entry(answer.status)
                            .or_default()
                            .push(sent.elapsed().as_secs_f64());
                        if answer.status == 503 && !pause_after_503.is_zero() {
                            tokio::time::sleep(pause_after_503).await;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (seen, errors)
        }));
    }
    let mut seen: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
    let mut errors = 0;
    for task in tasks {
        let (one, failed) = task.await?;
        errors += failed;
        for (status, mut latencies) in one {
            seen.entry(status).or_default().append(&mut latencies);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (status, latencies) in &mut seen {
        latencies.sort_by(f64::total_cmp);
        println!(
            "RESULT login connections={connections} status={status} count={} per_second={:.2} \
             p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
            latencies.len(),
            latencies.len() as f64 / elapsed,
            percentile_ms(latencies, 0.5),
            percentile_ms(latencies, 0.99),
            percentile_ms(latencies, 1.0),
        );
    }
    println!("RESULT login connections={connections} errors={errors} seconds={elapsed:.2}");
    Ok(())
}

async fn revoke(
    addr: String,
    file: PathBuf,
    assetpool: PathBuf,
    database: String,
) -> anyhow::Result<()> {
    let keys = lines(&file)?;
    anyhow::ensure!(
        keys.iter().all(|fields| fields.len() == 3) && !keys.is_empty(),
        "{} must hold KEY_ID KEY TOKEN lines",
        file.display()
    );
    let mut from_command = Vec::new();
    let mut from_exit = Vec::new();
    for fields in &keys {
        let request = format!(
            "GET /v1/resource HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {}\r\nx-api-token: {}\r\n\r\n",
            fields[1], fields[2]
        )
        .into_bytes();
        let mut connection = Connection::new(&addr);
        let before = connection.send(&request).await?;
        anyhow::ensure!(
            before.status == 200,
            "key {} was refused before revocation ({})",
            fields[0],
            before.status
        );
        let command_started = Instant::now();
        let mut child = tokio::process::Command::new(&assetpool)
            .args(["keys", "revoke", &fields[0], "--database", &database])
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", assetpool.display()))?;
        let mut exited: Option<Instant> = None;
        let refused = loop {
            if exited.is_none() {
                if let Some(status) = child.try_wait()? {
                    anyhow::ensure!(status.success(), "assetpool keys revoke failed");
                    exited = Some(Instant::now());
                }
            }
            let answer = connection.send(&request).await?;
            if answer.status == 401 {
                let body = String::from_utf8_lossy(&answer.body);
                anyhow::ensure!(
                    body.contains("api_key_revoked"),
                    "unexpected refusal: {body}"
                );
                break Instant::now();
            }
            anyhow::ensure!(answer.status == 200, "unexpected status {}", answer.status);
            anyhow::ensure!(
                command_started.elapsed() < Duration::from_secs(30),
                "the revocation was not applied within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if exited.is_none() {
            child.wait().await?;
        }
        from_command.push(refused.duration_since(command_started).as_secs_f64());
        from_exit.push(exited.map_or(0.0, |exited| {
            refused.saturating_duration_since(exited).as_secs_f64()
        }));
    }
    for (name, values) in [
        ("from_command", &mut from_command),
        ("from_commit", &mut from_exit),
    ] {
        values.sort_by(f64::total_cmp);
        println!(
            "RESULT revoke {name} rounds={} median_ms={:.1} worst_ms={:.1}",
            values.len(),
            percentile_ms(values, 0.5),
            percentile_ms(values, 1.0)
        );
    }
    Ok(())
}
