//! The `serve` settings of reverse-proxy WebSocket tunnels: idle timeout,
//! maximum lifetime, and the caps on open tunnels (server and API key).

use super::durations::Seconds;
use super::serve::MAX_CONNECTIONS;
use crate::settings::TunnelSettings;
use clap::Args;
use std::ops::RangeInclusive;
use std::time::Duration;

const TUNNEL_SECONDS: RangeInclusive<u64> = 1..=31_536_000;

/// The limits and caps of reverse-proxy WebSocket tunnels (`serve`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Reverse-proxy WebSocket tunnels")]
pub struct TunnelArgs {
    /// Seconds a WebSocket tunnel of reverse-proxy mode may carry no byte
    /// either way before it is closed (default 600).
    #[arg(long, env = "ASSETPOOL_TUNNEL_IDLE_TIMEOUT", value_name = "SECONDS",
          value_parser = Seconds::within(TUNNEL_SECONDS))]
    tunnel_idle_timeout: Option<u64>,
    /// Longest life of a WebSocket tunnel of reverse-proxy mode, in seconds
    /// (default 7200); a tunnel also ends when its token expires or is revoked.
    #[arg(long, env = "ASSETPOOL_TUNNEL_MAX_LIFETIME", value_name = "SECONDS",
          value_parser = Seconds::within(TUNNEL_SECONDS))]
    tunnel_max_lifetime: Option<u64>,
    /// WebSocket tunnels of reverse-proxy mode open at once on this server;
    /// beyond, upgrades get 503 overloaded (default: half of
    /// --max-connections, so plain requests always keep the other half).
    #[arg(long, env = "ASSETPOOL_MAX_TUNNELS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(MAX_CONNECTIONS))]
    max_tunnels: Option<u64>,
    /// WebSocket tunnels of reverse-proxy mode open at once with one API key;
    /// beyond, its upgrades get 429 rate_limited (default: a fifth of
    /// --max-tunnels).
    #[arg(long, env = "ASSETPOOL_MAX_TUNNELS_PER_KEY", value_name = "N",
          value_parser = clap::value_parser!(u64).range(MAX_CONNECTIONS))]
    max_tunnels_per_key: Option<u64>,
}

impl TunnelArgs {
    /// The tunnel limits of reverse-proxy mode (flag, environment, config
    /// file or default, as the command line merged them). The caps default to
    /// half of `max_connections` for the server and a fifth of that for one
    /// key; the server's may not exceed `max_connections`.
    pub fn settings(&self, max_connections: usize) -> anyhow::Result<TunnelSettings> {
        let defaults = TunnelSettings::default();
        let count = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        let max_open = self.max_tunnels.map_or((max_connections / 2).max(1), count);
        if max_open > max_connections {
            anyhow::bail!(
                "max-tunnels ({max_open}) may not exceed max-connections ({max_connections}): \
                 every tunnel holds a connection"
            );
        }
        Ok(TunnelSettings {
            max_open,
            max_per_key: self
                .max_tunnels_per_key
                .map_or((max_open / 5).max(1), count),
            idle_timeout: self
                .tunnel_idle_timeout
                .map_or(defaults.idle_timeout, Duration::from_secs),
            max_lifetime: self
                .tunnel_max_lifetime
                .map_or(defaults.max_lifetime, Duration::from_secs),
        })
    }
}
