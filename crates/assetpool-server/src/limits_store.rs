//! The Redis limits store (`serve --limits-store redis://HOST:PORT[/DB]`):
//! rate limits and quotas decided for every server at once.
//!
//! Each request of a key with a rate limit or a quota runs one Lua script
//! (EVALSHA, EVAL when Redis does not know it yet), atomically:
//! - the rate: GCRA on the key's theoretical arrival time at
//!   `assetpool:rate:{KEY_ID}`, in microseconds of Redis's own clock (`TIME`),
//!   so the servers' clocks do not matter; the entry expires once the bucket
//!   is full again;
//! - the quota: the period's count at `assetpool:quota:{KEY_ID}:PERIOD_START`,
//!   refused at the quota, expiring an hour after the period ends. A count
//!   Redis lost (a restart) starts again from what the asking server knows.
//!
//! When Redis does not answer within [`CALL_TIMEOUT`] (down at start, gone
//! later, or slow), the request is decided by the server alone, as without a
//! limits store; one warning is logged per outage, every such request is
//! counted (`assetpool_limits_store_fallbacks_total`), and Redis is not asked
//! again until a background task, retrying with a growing back-off, has
//! connected and had an answer to `PING`.

use assetpool_core::shared_limits::{
    LimitRequest, SharedDecision, SharedLimits, SharedLimitsStatus,
};
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest time one request waits for Redis before it is decided per server.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest time a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// First wait before connecting again after an outage; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A quota's count is kept this long after its period ends (servers' clocks
/// may disagree on the moment a period ends).
const QUOTA_GRACE_SECONDS: i64 = 3600;

/// GCRA and quota in one atomic step. KEYS: the rate's key, then the
/// quota's (only with a quota). ARGV: emission interval in microseconds (0:
/// no rate), burst, quota (0: none), the asking server's known count of the
/// period, the Unix time the quota's count expires. Answers `{0, 0}`
/// (admitted), `{1, MICROSECONDS}` (over the rate, until then) or `{2, COUNT}`
/// (quota used up).
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local now, new_tat
if interval > 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  local tolerance = interval * (tonumber(ARGV[2]) - 1)
  if tat - now > tolerance then
    return {1, tat - now - tolerance}
  end
  new_tat = tat + interval
end
local quota = tonumber(ARGV[3])
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[2])) or 0
  local floor = tonumber(ARGV[4])
  if used < floor then used = floor end
  if used >= quota then
    return {2, used}
  end
  redis.call('SET', KEYS[2], string.format('%.0f', used + 1))
  redis.call('EXPIREAT', KEYS[2], ARGV[5])
end
if new_tat then
  local ttl = math.ceil((new_tat - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
end
return {0, 0}
";

/// A `--limits-store` URL that cannot be used.
pub fn parse_url(text: &str) -> anyhow::Result<redis::Client> {
    let usage = "invalid --limits-store: expected redis://HOST:PORT[/DB]";
    let text = text.trim();
    if !text.starts_with("redis://") {
        anyhow::bail!("{usage}");
    }
    // The URL may hold a password: the parser's message is not repeated.
    redis::Client::open(text).map_err(|_| anyhow::anyhow!("{usage}"))
}

/// Rate limits and quotas shared through Redis; see the module documentation.
#[derive(Clone)]
pub struct RedisLimits {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    script: redis::Script,
    /// The connection requests use while `up`.
    connection: Mutex<Option<MultiplexedConnection>>,
    /// Whether requests ask Redis (false from an outage until a reconnection).
    up: AtomicBool,
    /// Whether the reconnection task runs.
    reconnecting: AtomicBool,
    fallbacks: AtomicU64,
    /// Failed calls in a row; at [`FAILURES_TO_TRIP`] the node stops asking
    /// Redis until a reconnection, so one slow answer does not move every key
    /// of the node to per-server limits.
    failures_in_a_row: AtomicU32,
}

/// Failed calls in a row after which requests stop asking Redis.
const FAILURES_TO_TRIP: u32 = 3;

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisLimits")
            .field("up", &self.inner.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// Connects to `client`'s Redis; when it cannot, logs one warning and
    /// keeps trying in the background (requests are decided per server
    /// meanwhile).
    pub async fn start(client: redis::Client) -> Self {
        let limits = RedisLimits {
            inner: Arc::new(Inner {
                client,
                script: redis::Script::new(SCRIPT),
                connection: Mutex::new(None),
                up: AtomicBool::new(false),
                reconnecting: AtomicBool::new(false),
                fallbacks: AtomicU64::new(0),
                failures_in_a_row: AtomicU32::new(0),
            }),
        };
        match limits.inner.connect().await {
            Ok(connection) => limits.inner.set_up(connection),
            Err(cause) => {
                tracing::warn!(
                    %cause,
                    "limits store unreachable at start: rate limits and quotas are per server until it answers"
                );
                Inner::spawn_reconnect(&limits.inner);
            }
        }
        limits
    }

    /// A request decided per server: counted; a failed call (`cause`) counts
    /// towards tripping, and a trip is logged once per outage. While not up,
    /// the reconnection task is (re)started if it is not running.
    fn fall_back(&self, cause: Option<&dyn std::fmt::Display>) {
        self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
        let Some(cause) = cause else {
            if !self.inner.reconnecting.load(Ordering::SeqCst) {
                Inner::spawn_reconnect(&self.inner);
            }
            return;
        };
        let failures = self.inner.failures_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
        if failures >= FAILURES_TO_TRIP {
            if self.inner.up.swap(false, Ordering::SeqCst) {
                tracing::warn!(
                    %cause,
                    "limits store unreachable: rate limits and quotas are per server until it answers again"
                );
            }
            Inner::spawn_reconnect(&self.inner);
        }
    }
}

impl Inner {
    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| error.to_string())?;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(CONNECT_TIMEOUT, ping.query_async::<String>(&mut connection))
            .await
        {
            Ok(Ok(_)) => Ok(connection),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("no answer to PING".to_owned()),
        }
    }

    fn set_up(&self, connection: MultiplexedConnection) {
        if let Ok(mut slot) = self.connection.lock() {
            *slot = Some(connection);
        }
        self.failures_in_a_row.store(0, Ordering::SeqCst);
        self.up.store(true, Ordering::SeqCst);
    }

    /// Starts the reconnection task unless it runs.
    fn spawn_reconnect(inner: &Arc<Inner>) {
        if inner.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                tokio::time::sleep(backoff).await;
                match inner.connect().await {
                    Ok(connection) => {
                        // Cleared first: a call failing right after `set_up`
                        // must be able to start the next reconnection.
                        inner.reconnecting.store(false, Ordering::SeqCst);
                        inner.set_up(connection);
                        tracing::info!(
                            "limits store reachable again: rate limits and quotas are shared"
                        );
                        return;
                    }
                    Err(cause) => {
                        tracing::debug!(%cause, "limits store still unreachable");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl SharedLimits for RedisLimits {
    async fn take(&self, request: LimitRequest<'_>) -> Option<SharedDecision> {
        if !self.inner.up.load(Ordering::Relaxed) {
            self.fall_back(None);
            return None;
        }
        let connection = self
            .inner
            .connection
            .lock()
            .ok()
            .and_then(|slot| slot.clone());
        let Some(mut connection) = connection else {
            self.fall_back(Some(&"no connection"));
            return None;
        };
        let key_id = request.key_id.as_str();
        let mut invocation = self.inner.script.prepare_invoke();
        invocation.key(format!("assetpool:rate:{{{key_id}}}"));
        match &request.rate {
            Some(rate) => {
                let interval = (rate.unit.seconds() * 1_000_000) / u64::from(rate.requests.max(1));
                invocation.arg(interval.max(1)).arg(rate.burst.max(1));
            }
            None => {
                invocation.arg(0).arg(1);
            }
        }
        match &request.quota {
            Some(quota) => {
                invocation
                    .key(format!(
                        "assetpool:quota:{{{key_id}}}:{}",
                        request.period_start.timestamp()
                    ))
                    .arg(quota.requests)
                    .arg(request.quota_floor)
                    .arg(request.period_end.timestamp() + QUOTA_GRACE_SECONDS);
            }
            None => {
                invocation.arg(0).arg(0).arg(0);
            }
        }
        let answer = tokio::time::timeout(
            CALL_TIMEOUT,
            invocation.invoke_async::<(i64, i64)>(&mut connection),
        )
        .await;
        if matches!(answer, Ok(Ok(_))) {
            self.inner.failures_in_a_row.store(0, Ordering::Relaxed);
        }
        match answer {
            Ok(Ok((0, _))) => Some(SharedDecision::Admitted),
            Ok(Ok((1, micros))) => Some(SharedDecision::RateExceeded {
                retry_after_micros: u64::try_from(micros).unwrap_or(0),
            }),
            Ok(Ok((2, _))) => Some(SharedDecision::QuotaExceeded),
            Ok(Ok((code, _))) => {
                self.fall_back(Some(&format_args!("unexpected answer {code}")));
                None
            }
            Ok(Err(error)) => {
                self.fall_back(Some(&error));
                None
            }
            Err(_) => {
                self.fall_back(Some(&format_args!(
                    "no answer within {} ms",
                    CALL_TIMEOUT.as_millis()
                )));
                None
            }
        }
    }

    fn status(&self) -> SharedLimitsStatus {
        SharedLimitsStatus {
            up: self.inner.up.load(Ordering::Relaxed),
            fallbacks: self.inner.fallbacks.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_redis_urls_are_accepted_and_never_echoed() {
        assert!(parse_url("redis://127.0.0.1:6379").is_ok());
        assert!(parse_url("redis://127.0.0.1:6379/3").is_ok());
        for bad in [
            "",
            "127.0.0.1:6379",
            "http://127.0.0.1:6379",
            "rediss://127.0.0.1",
            "redis://:hunter2-secret@[::1",
        ] {
            let message = parse_url(bad).unwrap_err().to_string();
            assert!(message.contains("redis://HOST:PORT"), "{bad}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
