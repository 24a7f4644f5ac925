//! WebSocket tunnels of reverse-proxy mode: once the upstream has accepted a
//! WebSocket upgrade (101), client and upstream connections are joined byte
//! for byte ([`splice`]), but only for as long as the request would still be
//! accepted, and only as many as the caps allow.
//!
//! - Places: before an upgrade is forwarded, it takes a [`TunnelPlace`]: one
//!   of the server's `max_open` and one of its API key's `max_per_key`
//!   ([`TunnelSettings`]), kept until the tunnel ends (or the upstream
//!   refuses the upgrade). Beyond either cap the upgrade is refused before
//!   the upstream sees it ([`TunnelLimit`]), so tunnels, which hold their
//!   connection for hours, never take every connection of the server, and
//!   one key never takes every tunnel.
//! - Credentials: one task per server looks at every open tunnel every
//!   [`RECHECK_INTERVAL`]. What memory knows comes first and never waits
//!   ([`AuthService::still_accepted_in_memory`]: the freshness guard, token
//!   expiry, revoked session, disabled key of the session; the key, if it is
//!   in memory, with the client's address against its allow-list): a logout,
//!   key revocation or disable, user disable, password change or a narrower
//!   allow-list, which reach every server through the change feed within a
//!   second, close the tunnel within a second too; so does a narrowing of its
//!   key's scopes that leaves it without the scopes its route needs
//!   (`--route-scope`). A key that
//!   changed is no longer in memory: it is read
//!   again in a task of the tunnel's own ([`AuthService::still_accepted`];
//!   at most one per tunnel, one storage read per key), so a slow read holds
//!   up no other tunnel and no memory check. A read that could not be made
//!   (the key reads are all busy, storage unavailable) is tried again on the
//!   next pass; a tunnel whose changed key stays unconfirmed for the
//!   maximum staleness is closed (as a request would be refused once
//!   storage has been out of reach that long). Nothing is counted against
//!   the key. The task runs only while tunnels are open.
//! - Time: a tunnel ends at its token's `exp`, at its maximum lifetime, and
//!   after its idle timeout without a byte either way.
//! - Resources: a tunnel keeps its client connection's [`ConnectionLease`],
//!   so it counts against `--max-connections` until it ends, and ends when
//!   the server shuts down.
//!
//! Ending a tunnel drops both connections: the client and the upstream see
//! them closed.

use super::splice::{splice, Spliced};
use crate::listener::ConnectionLease;
use crate::metrics::{Metrics, TunnelRefusalLabels};
use crate::settings::TunnelSettings;
use assetpool_core::ids::KeyId;
use assetpool_core::service::Verified;
use assetpool_core::{AuthService, ScopeSet, ServiceError, StoreError};
use assetpool_wire::ErrorCode;
use hyper::upgrade::OnUpgrade;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
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
    /// Its key changed and could not be read again within the maximum staleness.
    Unconfirmed,
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

/// The cap that refuses a new tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelLimit {
    /// The server has `max_open` tunnels.
    Server,
    /// The request's API key has `max_per_key` tunnels.
    Key,
}

impl TunnelLimit {
    /// The refusal's error code: 503 `overloaded` when the server has all
    /// the tunnels it may (its capacity, nothing the client did, as a
    /// saturated hashing pool); 429 `rate_limited` when the key has (that
    /// key's own use, as its rate limit and quota are).
    pub fn code(self) -> ErrorCode {
        match self {
            TunnelLimit::Server => ErrorCode::Overloaded,
            TunnelLimit::Key => ErrorCode::RateLimited,
        }
    }
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
    /// Places taken: tunnels open or being opened.
    places: usize,
    /// Places taken by API key id.
    places_by_key: HashMap<KeyId, usize>,
    /// Whether the re-checking task is running.
    checking: bool,
}

#[derive(Debug)]
struct Entry {
    verified: Verified,
    /// The scopes its route needs.
    required: Option<Arc<ScopeSet>>,
    end: oneshot::Sender<Ending>,
    /// Since when its key has not been in memory without a read confirming it.
    unconfirmed_since: Option<Instant>,
    /// Whether a task is reading its key.
    reading: bool,
}

/// A tunnel's place among the server's and its key's tunnels, held from
/// before the upgrade is forwarded until the tunnel ends.
#[derive(Debug)]
pub struct TunnelPlace {
    tunnels: Arc<Tunnels>,
    key_id: KeyId,
    open: Gauge,
}

impl Drop for TunnelPlace {
    fn drop(&mut self) {
        let mut registry = self.tunnels.registry();
        registry.places = registry.places.saturating_sub(1);
        if let Some(count) = registry.places_by_key.get_mut(&self.key_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                registry.places_by_key.remove(&self.key_id);
            }
        }
        drop(registry);
        self.open.dec();
    }
}

/// What a tunnel is checked against again: its credentials and the scopes
/// its route needs.
struct Checked {
    verified: Verified,
    required: Option<Arc<ScopeSet>>,
}

impl Checked {
    fn required(&self) -> Option<&ScopeSet> {
        self.required.as_deref()
    }
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
    /// The scopes its route needs (`--route-scope`), checked again with the credentials.
    pub required: Option<ScopeSet>,
    /// The client's side, ready once the 101 is written to it.
    pub client: OnUpgrade,
    /// The upstream's side.
    pub upstream: OnUpgrade,
    /// The client connection's slot (none when served without the listener).
    pub lease: Option<ConnectionLease>,
    /// Its place under the tunnel caps.
    pub place: TunnelPlace,
}

/// What the registry says of a tunnel whose key is not in memory.
enum Unconfirmed {
    /// Start a task that reads the key.
    Read,
    /// A task is reading it already.
    Reading,
    /// Unconfirmed for longer than allowed.
    TooLong,
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

    /// Takes a place for a new tunnel of `key_id`, or says which cap refuses
    /// it (counted in `metrics`).
    pub fn reserve(
        self: &Arc<Self>,
        key_id: &KeyId,
        metrics: &Metrics,
    ) -> Result<TunnelPlace, TunnelLimit> {
        let mut registry = self.registry();
        let of_key = registry.places_by_key.get(key_id).copied().unwrap_or(0);
        let refusal = if registry.places >= self.settings.max_open {
            Some(TunnelLimit::Server)
        } else if of_key >= self.settings.max_per_key {
            Some(TunnelLimit::Key)
        } else {
            None
        };
        if let Some(limit) = refusal {
            drop(registry);
            metrics
                .tunnels_refused
                .get_or_create(&TunnelRefusalLabels {
                    code: limit.code().as_str(),
                })
                .inc();
            return Err(limit);
        }
        registry.places += 1;
        registry.places_by_key.insert(key_id.clone(), of_key + 1);
        drop(registry);
        metrics.tunnels_open.inc();
        Ok(TunnelPlace {
            tunnels: self.clone(),
            key_id: key_id.clone(),
            open: metrics.tunnels_open.clone(),
        })
    }

    /// Starts the tunnel of `request` in its own task.
    pub fn open(self: &Arc<Self>, service: &Arc<AuthService>, request: TunnelRequest) {
        let ends_at = self.ends_at(service, &request.verified);
        let key_id = request.verified.key.record.id.clone();
        let required = request.required.map(Arc::new);
        let (registration, ended) = self.register(service, request.verified, required);
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
                spliced = splice(request.client, request.upstream, idle_timeout) => match spliced {
                    Spliced::Closed => Ending::Closed,
                    Spliced::Idle => Ending::Idle,
                    Spliced::Failed => Ending::Failed,
                },
            };
            drop(registration);
            // Dropping the connections (with `splice`) closes them; the place
            // and the lease go last.
            drop(request.place);
            drop(lease);
            log_ending(&key_id, ending);
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
        required: Option<Arc<ScopeSet>>,
    ) -> (Registration, oneshot::Receiver<Ending>) {
        let (end, ended) = oneshot::channel();
        let mut registry = self.registry();
        let id = registry.next_id;
        registry.next_id = registry.next_id.wrapping_add(1);
        let entry = Entry {
            verified,
            required,
            end,
            unconfirmed_since: None,
            reading: false,
        };
        registry.open.insert(id, entry);
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

    /// The credentials (and the scopes its route needs) of every open
    /// tunnel, or `None` (and the task stops) when none is open.
    fn snapshot(&self) -> Option<Vec<(u64, Checked)>> {
        let mut registry = self.registry();
        if registry.open.is_empty() {
            registry.checking = false;
            return None;
        }
        Some(
            registry
                .open
                .iter()
                .map(|(id, entry)| {
                    let checked = Checked {
                        verified: entry.verified.clone(),
                        required: entry.required.clone(),
                    };
                    (*id, checked)
                })
                .collect(),
        )
    }

    fn end(&self, id: u64, ending: Ending) {
        if let Some(entry) = self.registry().open.remove(&id) {
            // The tunnel may have ended by itself meanwhile.
            let _ = entry.end.send(ending);
        }
    }

    /// The tunnel's key is confirmed: in memory and accepted, or read and accepted.
    fn confirmed(&self, id: u64) {
        if let Some(entry) = self.registry().open.get_mut(&id) {
            entry.unconfirmed_since = None;
            entry.reading = false;
        }
    }

    /// A read of the tunnel's key ended without an answer (to try again).
    fn read_failed(&self, id: u64) {
        if let Some(entry) = self.registry().open.get_mut(&id) {
            entry.reading = false;
        }
    }

    /// The tunnel's key is not in memory at `now`: what to do about it.
    fn unconfirmed(&self, id: u64, now: Instant, limit: Duration) -> Option<Unconfirmed> {
        let mut registry = self.registry();
        let entry = registry.open.get_mut(&id)?;
        let since = *entry.unconfirmed_since.get_or_insert(now);
        Some(if now.duration_since(since) > limit {
            Unconfirmed::TooLong
        } else if entry.reading {
            Unconfirmed::Reading
        } else {
            entry.reading = true;
            Unconfirmed::Read
        })
    }
}

fn log_ending(key_id: &KeyId, ending: Ending) {
    let key_id = key_id.as_str();
    match ending {
        Ending::Closed => tracing::debug!(key_id, "WebSocket tunnel closed"),
        Ending::Refused(code) => tracing::info!(
            key_id,
            code = code.as_str(),
            "WebSocket tunnel closed: its credentials are no longer accepted"
        ),
        Ending::Unconfirmed => tracing::warn!(
            key_id,
            "WebSocket tunnel closed: its key changed and could not be read again \
             within the maximum staleness"
        ),
        other => tracing::debug!(key_id, ending = ?other, "WebSocket tunnel ended"),
    }
}

/// Re-checks every open tunnel every [`RECHECK_INTERVAL`] and ends those
/// that would be refused; returns once no tunnel is open. Memory checks run
/// here and never wait; key reads run in tasks of their own.
async fn recheck_open_tunnels(tunnels: Arc<Tunnels>, service: Arc<AuthService>) {
    let mut ticker = tokio::time::interval(RECHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let unconfirmed_limit = service.settings().max_staleness;
    loop {
        ticker.tick().await;
        let Some(open) = tunnels.snapshot() else {
            return;
        };
        let now = Instant::now();
        for (id, checked) in open {
            match service.still_accepted_in_memory(&checked.verified, checked.required()) {
                Err(refusal) => tunnels.end(id, Ending::Refused(refusal.code())),
                Ok(true) => tunnels.confirmed(id),
                Ok(false) => match tunnels.unconfirmed(id, now, unconfirmed_limit) {
                    Some(Unconfirmed::Read) => {
                        tokio::spawn(read_key(tunnels.clone(), service.clone(), id, checked));
                    }
                    Some(Unconfirmed::TooLong) => tunnels.end(id, Ending::Unconfirmed),
                    Some(Unconfirmed::Reading) | None => {}
                },
            }
        }
    }
}

/// Reads the key of tunnel `id` again and acts on the answer. The read
/// belongs to this task (it holds the key-read slot and the storage
/// connection until storage answers), so nothing cancels it midway.
async fn read_key(tunnels: Arc<Tunnels>, service: Arc<AuthService>, id: u64, checked: Checked) {
    match service
        .still_accepted(&checked.verified, checked.required())
        .await
    {
        Ok(()) => tunnels.confirmed(id),
        Err(error) if is_transient(&error) => {
            tracing::debug!(%error, "could not read a tunnel's key again; trying again");
            tunnels.read_failed(id);
        }
        Err(refusal) => tunnels.end(id, Ending::Refused(refusal.code())),
    }
}

/// Errors after which the read may succeed if tried again: the key reads
/// were all busy, or storage was unavailable. (A stale change feed is found
/// by the memory check of the next pass, which closes the tunnel.)
fn is_transient(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::Overloaded { .. } | ServiceError::Store(StoreError::Unavailable(_))
    )
}
