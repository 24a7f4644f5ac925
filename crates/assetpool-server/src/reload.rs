//! What SIGHUP reloads while the server runs: the TLS certificate and key
//! (renewed certificates take effect at the next handshake; open connections
//! keep theirs) and the leak-report public keys. A file that cannot be read
//! or used is logged and the one in use stays: a bad reload never stops the
//! server nor drops a connection.

use crate::leak_reports::LeakReportKeys;
use crate::listener::TlsCertificate;
use std::sync::Arc;

/// The reloadable parts of a running server.
#[derive(Debug, Clone)]
pub struct Reloader {
    pub(crate) tls: Option<Arc<TlsCertificate>>,
    pub(crate) leak_reports: Arc<LeakReportKeys>,
}

/// What one reload did.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    /// The parts read again.
    pub reloaded: Vec<&'static str>,
    /// The parts that failed, with why (the previous ones stay in use).
    pub failed: Vec<(&'static str, anyhow::Error)>,
}

impl Reloader {
    /// Reads the TLS certificate (if serving HTTPS) and the leak-report keys
    /// again, and logs what happened.
    pub fn reload(&self) -> ReloadOutcome {
        let mut outcome = ReloadOutcome::default();
        let mut record = |part: &'static str, result: anyhow::Result<()>| match result {
            Ok(()) => outcome.reloaded.push(part),
            Err(error) => outcome.failed.push((part, error)),
        };
        if let Some(tls) = &self.tls {
            record("TLS certificate", tls.reload());
        }
        record("leak-report keys", self.leak_reports.reload());
        for part in &outcome.reloaded {
            tracing::info!(part, "reloaded");
        }
        for (part, error) in &outcome.failed {
            tracing::error!(
                part,
                error = format!("{error:#}"),
                "cannot reload; the one in use stays"
            );
        }
        outcome
    }

    /// Reloads on every SIGHUP `hangups` catches until the process ends (one
    /// caught before this call, while the server was starting, reloads at once).
    #[cfg(unix)]
    pub fn reload_on(self, mut hangups: Hangups) {
        tokio::spawn(async move {
            while hangups.0.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the TLS certificate and leak-report keys");
                self.reload();
            }
        });
    }
}

/// SIGHUP, caught from [`Hangups::catch`] on: from then on a SIGHUP no
/// longer ends the process (its default action), even while the server is
/// still starting (connecting to storage, migrating).
#[cfg(unix)]
#[derive(Debug)]
pub struct Hangups(tokio::signal::unix::Signal);

#[cfg(unix)]
impl Hangups {
    /// Installs the handler (within a tokio runtime).
    pub fn catch() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use tokio::signal::unix::{signal, SignalKind};
        let hangups = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        Ok(Hangups(hangups))
    }
}
