//! WebSocket tunnels of reverse-proxy mode: once the upstream has accepted a
//! WebSocket upgrade (101), client and upstream connections are joined byte
//! for byte, but only for as long as the request would still be accepted.
//!
//! - Credentials: one task per server re-checks every open tunnel every
//!   [`RECHECK_INTERVAL`] with [`AuthService::still_accepted`] (memory only
//!   while the key is cached; nothing counted against the key), so a logout,
//!   key revocation, user disable or password change, which reach every
//!   server through the change feed within a second, close the tunnel within
//!   a second too. One sequential pass also means a key evicted by a change
//!   is read from storage once, not once per tunnel. The task runs only
//!   while tunnels are open.
//! - Time: a tunnel ends at its token's `exp`, at its maximum lifetime, and
//!   after its idle timeout without a byte either way
//!   ([`TunnelSettings`]).
//! - Resources: a tunnel keeps its client connection's [`ConnectionLease`],
//!   so it counts against `--max-connections` until it ends, and ends when
//!   the server shuts down.
//!
//! Ending a tunnel drops both connections: the client and the upstream see
//! them closed.

use crate::listener::ConnectionLease;
use crate::settings::TunnelSettings;
use assetpool_core::service::Verified;
use assetpool_core::AuthService;
use assetpool_wire::ErrorCode;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How often the credentials of open tunnels are checked again.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Either side closed it (or the connection failed).
    Closed,
    /// Its credentials would now be refused with this code.
    Refused(ErrorCode),
    /// Its token reached `exp`.
    TokenExpired,
    /// It reached the maximum lifetime.
    MaxLifetime,
    /// No byte either way for the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// An upgrade did not complete.
    Failed,
}

/// The open tunnels of one reverse proxy, and their limits.
#[derive(Debug)]
pub struct Tunnels {
    settings: TunnelSettings,
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Entry>,
    /// Whether the re-checking task is running.
    checking: bool,
}

#[derive(Debug)]
struct Entry {
    verified: Verified,
    end: oneshot::Sender<Ending>,
}

/// A tunnel's place in the registry, given up when the tunnel task ends.
struct Registration {
    tunnels: Arc<Tunnels>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tunnels.registry().open.remove(&self.id);
    }
}

/// What a tunnel needs once the upstream has switched protocols.
pub struct TunnelRequest {
    /// The credentials the upgrade request was accepted with.
    pub verified: Verified,
    /// The client's side, ready once the 101 is written to it.
    pub client: OnUpgrade,
    /// The upstream's side.
    pub upstream: OnUpgrade,
    /// The client connection's slot (none when served without the listener).
    pub lease: Option<ConnectionLease>,
}

impl Tunnels {
    /// No tunnels yet, with these limits.
    pub fn new(settings: TunnelSettings) -> Self {
        Tunnels {
            settings,
            registry: Mutex::new(Registry::default()),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the tunnel of `request` in its own task.
    pub fn open(self: &Arc<Self>, service: &Arc<AuthService>, request: TunnelRequest) {
        let ends_at = self.ends_at(service, &request.verified);
        let key_id = request.verified.key.record.id.clone();
        let (registration, ended) = self.register(service, request.verified);
        let idle_timeout = self.settings.idle_timeout;
        tokio::spawn(async move {
            let lease = request.lease;
            let stopping = async {
                match &lease {
                    Some(lease) => lease.stopping().await,
                    None => std::future::pending().await,
                }
            };
            let ending = tokio::select! {
                biased;
                ending = ended => ending.unwrap_or(Ending::Closed),
                () = tokio::time::sleep_until(ends_at.0) => ends_at.1,
                () = stopping => Ending::Shutdown,
                ending = splice(request.client, request.upstream, idle_timeout) => ending,
            };
            drop(registration);
            // Dropping the connections (with `splice`) closes them; the lease goes last.
            drop(lease);
            match ending {
                Ending::Closed => tracing::debug!(key_id, "WebSocket tunnel closed"),
                Ending::Refused(code) => tracing::info!(
                    key_id,
                    code = code.as_str(),
                    "WebSocket tunnel closed: its credentials are no longer accepted"
                ),
                other => tracing::debug!(key_id, ending = ?other, "WebSocket tunnel ended"),
            }
        });
    }

    /// When the tunnel must end at the latest, and why: its token's `exp`
    /// (on the service's clock) or its maximum lifetime.
    fn ends_at(&self, service: &AuthService, verified: &Verified) -> (Instant, Ending) {
        let now = Instant::now();
        let token_left_ms = verified
            .claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(service.clock().now().timestamp_millis());
        let token_left = Duration::from_millis(u64::try_from(token_left_ms).unwrap_or(0));
        if token_left < self.settings.max_lifetime {
            (now + token_left, Ending::TokenExpired)
        } else {
            (now + self.settings.max_lifetime, Ending::MaxLifetime)
        }
    }

    /// Adds a tunnel to the registry (starting the re-checking task if it
    /// was not running); the receiver learns when the task ends it.
    fn register(
        self: &Arc<Self>,
        service: &Arc<AuthService>,
        verified: Verified,
    ) -> (Registration, oneshot::Receiver<Ending>) {
        let (end, ended) = oneshot::channel();
        let mut registry = self.registry();
        let id = registry.next_id;
        registry.next_id = registry.next_id.wrapping_add(1);
        registry.open.insert(id, Entry { verified, end });
        if !registry.checking {
            registry.checking = true;
            tokio::spawn(recheck_open_tunnels(self.clone(), service.clone()));
        }
        drop(registry);
        let registration = Registration {
            tunnels: self.clone(),
            id,
        };
        (registration, ended)
    }

    /// The credentials of every open tunnel, or `None` (and the task stops)
    /// when none is open.
    fn snapshot(&self) -> Option<Vec<(u64, Verified)>> {
        let mut registry = self.registry();
        if registry.open.is_empty() {
            registry.checking = false;
            return None;
        }
        Some(
            registry
                .open
                .iter()
                .map(|(id, entry)| (*id, entry.verified.clone()))
                .collect(),
        )
    }

    fn end(&self, id: u64, ending: Ending) {
        if let Some(entry) = self.registry().open.remove(&id) {
            // The tunnel may have ended by itself meanwhile.
            let _ = entry.end.send(ending);
        }
    }
}

/// Re-checks the credentials of every open tunnel every [`RECHECK_INTERVAL`]
/// and ends those that would be refused; returns once no tunnel is open.
async fn recheck_open_tunnels(tunnels: Arc<Tunnels>, service: Arc<AuthService>) {
    let mut ticker = tokio::time::interval(RECHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(open) = tunnels.snapshot() else {
            return;
        };
        for (id, verified) in open {
            if let Err(refusal) = service.still_accepted(&verified).await {
                tunnels.end(id, Ending::Refused(refusal.code()));
            }
        }
    }
}

/// Waits for both sides to switch protocols, then copies bytes both ways
/// until either side closes or nothing moves for `idle_timeout`.
async fn splice(client: OnUpgrade, upstream: OnUpgrade, idle_timeout: Duration) -> Ending {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::warn!(%error, "WebSocket upgrade through the proxy failed");
            return Ending::Failed;
        }
    };
    let started = Instant::now();
    let last_read = Arc::new(AtomicU64::new(0));
    let mut client = Watched::new(TokioIo::new(client), started, last_read.clone());
    let mut upstream = Watched::new(TokioIo::new(upstream), started, last_read.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let idle_at =
            started + Duration::from_millis(last_read.load(Ordering::Relaxed)) + idle_timeout;
        tokio::select! {
            // An error is a connection reset by either side: closed all the same.
            _ = &mut copy => return Ending::Closed,
            () = tokio::time::sleep_until(idle_at) => {
                let last = started + Duration::from_millis(last_read.load(Ordering::Relaxed));
                if last + idle_timeout <= Instant::now() {
                    return Ending::Idle;
                }
            }
        }
    }
}

/// One side of a tunnel, noting when it last delivered bytes (as
/// milliseconds since the tunnel started, shared by both sides).
struct Watched<S> {
    inner: S,
    started: Instant,
    last_read: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn new(inner: S, started: Instant, last_read: Arc<AtomicU64>) -> Self {
        Watched {
            inner,
            started,
            last_read,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            let elapsed = u64::try_from(this.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            this.last_read.store(elapsed, Ordering::Relaxed);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, buffer)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}
