//! Joining the two upgraded connections of a [`tunnel`](super::tunnel) byte
//! for byte, until either side closes or nothing moves for the idle timeout.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// Either side closed it (or the connection failed).
    Closed,
    /// No byte either way for the idle timeout.
    Idle,
    /// An upgrade did not complete.
    Failed,
}

/// Waits for both sides to switch protocols, then copies bytes both ways
/// until either side closes or nothing moves for `idle_timeout`.
pub async fn splice(client: OnUpgrade, upstream: OnUpgrade, idle_timeout: Duration) -> Spliced {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::warn!(%error, "WebSocket upgrade through the proxy failed");
            return Spliced::Failed;
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
            _ = &mut copy => return Spliced::Closed,
            () = tokio::time::sleep_until(idle_at) => {
                let last = started + Duration::from_millis(last_read.load(Ordering::Relaxed));
                if last + idle_timeout <= Instant::now() {
                    return Spliced::Idle;
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
