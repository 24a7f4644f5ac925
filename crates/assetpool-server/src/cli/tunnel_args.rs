//! The `serve` settings of reverse-proxy WebSocket tunnels: idle timeout,
//! maximum lifetime, and the caps on open tunnels (server and API key).

use super::config::FileConfig;
use super::serve::{listener_value, MAX_CONNECTIONS};
use crate::settings::TunnelSettings;
use clap::Args;
use std::ops::RangeInclusive;
use std::time::Duration;

const TUNNEL_SECONDS: RangeInclusive<u64> = 1..=31_536_000;

/// The limits and caps of reverse-proxy WebSocket tunnels (`serve`).
#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// Seconds a WebSocket tunnel of reverse-proxy mode may carry no byte
    /// either way before it is closed (default 600).
    #[arg(long, env = "ASSETPOOL_TUNNEL_IDLE_TIMEOUT", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(TUNNEL_SECONDS))]
    tunnel_idle_timeout: Option<u64>,
    /// Longest life of a WebSocket tunnel of reverse-proxy mode, in seconds
    /// (default 7200); a tunnel also ends when its token expires or is revoked.
    #[arg(long, env = "ASSETPOOL_TUNNEL_MAX_LIFETIME", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(TUNNEL_SECONDS))]
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
    /// The tunnel limits of reverse-proxy mode: flag (or environment), else
    /// config file, else default. The caps default to half of
    /// `max_connections` for the server and a fifth of that for one key; the
    /// server's may not exceed `max_connections`.
    pub fn settings(
        &self,
        file: &FileConfig,
        max_connections: usize,
    ) -> anyhow::Result<TunnelSettings> {
        let defaults = TunnelSettings::default();
        let count = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        let max_open = count(listener_value(
            self.max_tunnels,
            file.max_tunnels,
            "max-tunnels",
            MAX_CONNECTIONS,
            (max_connections as u64 / 2).max(1),
        )?);
        if max_open > max_connections {
            anyhow::bail!(
                "max-tunnels ({max_open}) may not exceed max-connections ({max_connections}): \
                 every tunnel holds a connection"
            );
        }
        let max_per_key = count(listener_value(
            self.max_tunnels_per_key,
            file.max_tunnels_per_key,
            "max-tunnels-per-key",
            MAX_CONNECTIONS,
            (max_open as u64 / 5).max(1),
        )?);
        Ok(TunnelSettings {
            max_open,
            max_per_key,
            idle_timeout: Duration::from_secs(listener_value(
                self.tunnel_idle_timeout,
                file.tunnel_idle_timeout,
                "tunnel-idle-timeout",
                TUNNEL_SECONDS,
                defaults.idle_timeout.as_secs(),
            )?),
            max_lifetime: Duration::from_secs(listener_value(
                self.tunnel_max_lifetime,
                file.tunnel_max_lifetime,
                "tunnel-max-lifetime",
                TUNNEL_SECONDS,
                defaults.max_lifetime.as_secs(),
            )?),
        })
    }
}
