//! The listener: an accept loop on hyper's HTTP/1 connection, with the limits
//! of [`ListenerSettings`] and optional TLS.
//!
//! - At most `max_connections` connections are open; beyond, the loop waits
//!   for a slot before accepting (clients wait in the kernel's accept queue).
//!   A connection's slot is its [`ConnectionLease`]: a connection taken over
//!   by an upgrade (the reverse proxy's WebSocket tunnels) keeps it, and
//!   shutdown waits for it, until the tunnel ends.
//! - Each connection has a watchdog: from accept (TLS handshake included), or
//!   from the first byte of a following request, the request head must be
//!   complete within `header_read_timeout`; between requests, a connection may
//!   idle for `keep_alive_timeout`. Past either, the connection is closed.
//!   While a request is being answered (until its response body is written),
//!   neither applies: the router's request time limit does.
//! - Request heads over `max_header_size` bytes or `max_headers` headers get
//!   431 from hyper, and the connection is closed.
//! - Every request carries the peer as [`ConnectInfo<SocketAddr>`].
//! - Shutdown: stop accepting (the listening socket is closed), let each
//!   connection finish its in-flight request, close idle ones, wait for all
//!   for at most `shutdown_timeout`; connections still open then are closed.

use crate::settings::{ListenerSettings, TlsFiles};
use anyhow::Context as _;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Marks requests that arrived over TLS (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls;

/// A connection's place among the open connections (a request extension):
/// its slot under `max_connections`, and its share of what shutdown waits
/// for. Work that takes the connection over from hyper (an upgraded tunnel)
/// keeps a clone for as long as it uses the connection, so the slot is
/// released only when the last holder is gone.
#[derive(Clone)]
pub struct ConnectionLease(Arc<LeaseHeld>);

struct LeaseHeld {
    _slot: OwnedSemaphorePermit,
    _open: mpsc::Sender<()>,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for ConnectionLease {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConnectionLease")
            .finish_non_exhaustive()
    }
}

impl ConnectionLease {
    /// Completes when the server begins to shut down (at once if it has).
    pub async fn stopping(&self) {
        let mut stop = self.0.stop.clone();
        // An error means the server is gone: stopping too.
        let _ = stop.wait_for(|stopping| *stopping).await;
    }
}

/// hyper's default number of request headers (parsed on the stack).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The HTTPS acceptor for a certificate chain and private key in PEM files
/// (rustls with the `ring` provider; TLS 1.2 and 1.3; ALPN `http/1.1`), and
/// its certificate source, which [`TlsCertificate::reload`] reads again
/// (SIGHUP): handshakes after a reload use the new certificate, connections
/// already open keep theirs.
pub fn tls_acceptor(files: &TlsFiles) -> anyhow::Result<(TlsAcceptor, Arc<TlsCertificate>)> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let certificate = Arc::new(TlsCertificate {
        current: RwLock::new(Arc::new(load_certified_key(files, &provider)?)),
        files: files.clone(),
        provider: provider.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS")?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), certificate))
}

/// The server's certificate and key, read from their files at start and on
/// each [`TlsCertificate::reload`].
pub struct TlsCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsCertificate")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsCertificate {
    /// Reads the certificate and key files again. On any error (unreadable,
    /// not PEM, key not matching the certificate) the current pair stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = Arc::new(load_certified_key(&self.files, &self.provider)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(())
    }
}

impl ResolvesServerCert for TlsCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reads a certificate chain and its private key (PEM) and checks that they
/// belong together.
fn load_certified_key(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(&files.cert).with_context(|| {
        format!(
            "cannot read the TLS certificate file {}",
            files.cert.display()
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            anyhow::anyhow!(
                "invalid TLS certificate file {}: {error}",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "invalid TLS certificate file {}: no PEM certificate in it",
            files.cert.display()
        );
    }
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("cannot read the TLS key file {}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        anyhow::anyhow!(
            "invalid TLS key file {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|error| {
        anyhow::anyhow!(
            "the TLS certificate {} and key {} cannot be used together: {error}",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then stops accepting, lets open connections finish their
/// in-flight requests and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    settings: ListenerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shared = Arc::new(Shared {
        router,
        tls,
        settings,
        http: http_builder(&settings),
    });
    let slots = Arc::new(Semaphore::new(
        settings.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let (stop_sender, stop) = watch::channel(false);
    // Each connection holds a sender; `recv` ends when the last one is gone.
    let (open_sender, mut open) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_connection_error(&error) {
                        // Out of file descriptors or similar: wait rather than spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let lease = ConnectionLease(Arc::new(LeaseHeld {
            _slot: slot,
            _open: open_sender.clone(),
            stop: stop.clone(),
        }));
        // The slot is released when the connection and whatever took it over are done.
        tokio::spawn(async move { shared.connection(stream, peer, lease).await });
    }
    drop(listener);
    // Nobody may be listening any more: that is fine.
    let _ = stop_sender.send(true);
    drop(open_sender);
    if tokio::time::timeout(settings.shutdown_timeout, open.recv())
        .await
        .is_err()
    {
        let capacity = settings.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let still_open = capacity.saturating_sub(slots.available_permits());
        tracing::warn!(
            connections = still_open,
            timeout_seconds = settings.shutdown_timeout.as_secs(),
            "connections still open at the shutdown timeout are closed"
        );
    }
}

/// Errors of one connection that was being accepted, not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn http_builder(settings: &ListenerSettings) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog times request heads: hyper's own timer would also run
        // while a keep-alive connection idles between requests.
        .header_read_timeout(None)
        .keep_alive(!settings.keep_alive_timeout.is_zero())
        .max_header_size(settings.max_header_size);
    if settings.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        // Any other count moves hyper's header array from the stack to the heap.
        builder.max_headers(settings.max_headers);
    }
    builder
}

struct Shared {
    router: Router,
    tls: Option<TlsAcceptor>,
    settings: ListenerSettings,
    http: hyper::server::conn::http1::Builder,
}

impl Shared {
    async fn connection(&self, stream: TcpStream, peer: SocketAddr, lease: ConnectionLease) {
        let mut stop = lease.0.stop.clone();
        let accepted = Instant::now();
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new(accepted));
        match &self.tls {
            None => self.serve_http(stream, peer, activity, lease).await,
            Some(acceptor) => {
                let deadline = accepted + self.settings.header_read_timeout;
                let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
                let stream = tokio::select! {
                    handshake = handshake => match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                    _ = stop.wait_for(|stopping| *stopping) => return,
                };
                self.serve_http(stream, peer, activity, lease).await;
            }
        }
    }

    async fn serve_http<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        activity: Arc<Activity>,
        lease: ConnectionLease,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let router = self.router.clone();
        let requests = activity.clone();
        let tls = self.tls.is_some();
        let mut stop = lease.0.stop.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let guard = RequestGuard::begin(requests.clone());
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(lease.clone());
            if tls {
                request.extensions_mut().insert(Tls);
            }
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Guarded {
                    inner: body,
                    _guard: guard,
                }))
            }
        });
        let connection = self.http.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        // The watchdog's one timer, re-armed only when it fires (see
        // `watchdog_step`): requests change the phase without waking it.
        let step = watchdog_step(&self.settings);
        let sleep = tokio::time::sleep_until(activity.since_accepted() + step);
        tokio::pin!(sleep);
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "connection closed with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|stopping| *stopping), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = sleep.as_mut() => {
                    let now = Instant::now();
                    match activity.deadline(&self.settings) {
                        Some(at) if at <= now => {
                            tracing::debug!(%peer, "closing a slow or idle connection");
                            return;
                        }
                        Some(at) => sleep.as_mut().reset(at.min(now + step)),
                        None => sleep.as_mut().reset(now + step),
                    }
                }
            }
        }
    }
}

/// How far ahead the watchdog's timer is armed at most: the shorter of the
/// head and keep-alive timeouts (at least a millisecond).
///
/// Every deadline is a phase's start plus one of those timeouts, and a phase
/// starts no earlier than the moment the timer is armed, so a timer armed at
/// most `step` ahead never fires after the deadline of a phase that starts
/// later. When it fires, it closes the connection if the current phase's
/// deadline has passed, or is armed again for that deadline (at most `step`
/// ahead). So a connection is closed at its deadline, yet a request costs no
/// timer registration and no wake-up of the watchdog: one timer per
/// connection fires once per `step` instead.
///
/// A zero keep-alive timeout (keep-alive off: hyper closes the connection
/// after its response) does not count; a zero head timeout makes the step a
/// millisecond.
fn watchdog_step(settings: &ListenerSettings) -> Duration {
    let step = if settings.keep_alive_timeout.is_zero() {
        settings.header_read_timeout
    } else {
        settings
            .header_read_timeout
            .min(settings.keep_alive_timeout)
    };
    step.max(Duration::from_millis(1))
}

/// Where a connection stands, for its watchdog.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head that started (or the connection opened) at `since`.
    Head { since: Instant },
    /// Answering `requests` requests.
    Busy { requests: usize },
    /// Between requests since `since`.
    Idle { since: Instant },
}

struct Activity {
    accepted: Instant,
    phase: Mutex<Phase>,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Activity {
            accepted,
            phase: Mutex::new(Phase::Head { since: accepted }),
        }
    }

    fn since_accepted(&self) -> Instant {
        self.accepted
    }

    fn update(&self, change: impl FnOnce(Phase) -> Option<Phase>) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = change(*phase) {
            *phase = next;
        }
    }

    /// Bytes arrived: between requests, they start the next request head.
    fn on_read(&self) {
        self.update(|phase| match phase {
            Phase::Idle { .. } => Some(Phase::Head {
                since: Instant::now(),
            }),
            Phase::Head { .. } | Phase::Busy { .. } => None,
        });
    }

    fn begin_request(&self) {
        self.update(|phase| match phase {
            Phase::Busy { requests } => Some(Phase::Busy {
                requests: requests.saturating_add(1),
            }),
            Phase::Head { .. } | Phase::Idle { .. } => Some(Phase::Busy { requests: 1 }),
        });
    }

    fn end_request(&self) {
        self.update(|phase| match phase {
            Phase::Busy { requests } if requests > 1 => Some(Phase::Busy {
                requests: requests - 1,
            }),
            Phase::Busy { .. } => Some(Phase::Idle {
                since: Instant::now(),
            }),
            Phase::Head { .. } | Phase::Idle { .. } => None,
        });
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self, settings: &ListenerSettings) -> Option<Instant> {
        let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Phase::Head { since } => Some(since + settings.header_read_timeout),
            Phase::Busy { .. } => None,
            Phase::Idle { since } => Some(since + settings.keep_alive_timeout),
        }
    }
}

/// A request being answered, until its response body is written or dropped.
struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.begin_request();
        RequestGuard(activity)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A response body that keeps its request counted as in flight.
struct Guarded {
    inner: Body,
    _guard: RequestGuard,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that tells the watchdog when bytes arrive.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
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
