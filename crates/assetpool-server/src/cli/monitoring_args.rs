//! The `serve` settings of usage tracking and of the alert rules.

use crate::settings::ServerSettings;
use assetpool_core::alerts::AlertRule;
use clap::Args;

/// Usage tracking and alert rules (`serve`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Usage tracking and alert rules")]
pub struct MonitoringArgs {
    /// Count usage per key (`keys usage`, usage-based alerts): true or false (default true).
    #[arg(long, env = "ASSETPOOL_USAGE_TRACKING", value_name = "BOOL")]
    usage_tracking: Option<bool>,
    /// Switch an alert rule off (repeatable; environment: comma-separated):
    /// failed_logins, revoked_key_used, expired_key_used, new_network, rate_spike,
    /// wrong_environment, refresh_token_reused, key_expiring, key_leaked, address_not_allowed.
    #[arg(long = "alert-disable", env = "ASSETPOOL_ALERT_DISABLE", value_name = "RULE",
          value_delimiter = ',', value_parser = parse_rule)]
    alert_disable: Vec<AlertRule>,
    /// Failed logins through one key within an hour, or on one account, that
    /// raise `failed_logins` (default 20).
    #[arg(long, env = "ASSETPOOL_ALERT_FAILED_LOGINS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    alert_failed_logins: Option<u64>,
    /// `rate_spike` when a key's hourly requests exceed this many times its
    /// hourly median of the last 7 days (default 10).
    #[arg(long, env = "ASSETPOOL_ALERT_RATE_FACTOR", value_name = "N",
          value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    alert_rate_factor: Option<u64>,
    /// ...and at least this many requests in the hour (default 100).
    #[arg(long, env = "ASSETPOOL_ALERT_RATE_MIN", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    alert_rate_min: Option<u64>,
}

fn parse_rule(text: &str) -> Result<AlertRule, String> {
    AlertRule::parse(text.trim()).ok_or_else(|| {
        let names: Vec<&str> = AlertRule::ALL.iter().map(|rule| rule.as_str()).collect();
        format!("unknown alert rule; expected one of {}", names.join(", "))
    })
}

impl MonitoringArgs {
    /// Applies the arguments (flag, environment, config file, as the command
    /// line merged them) onto `settings`.
    pub fn apply(&self, settings: &mut ServerSettings) {
        if let Some(enabled) = self.usage_tracking {
            settings.usage_tracking = enabled;
        }
        let alerts = &mut settings.alerts;
        alerts.disabled = self.alert_disable.clone();
        if let Some(failures) = self.alert_failed_logins {
            alerts.failed_logins_per_key = failures;
            alerts.failed_logins_per_account = u32::try_from(failures).unwrap_or(u32::MAX);
        }
        if let Some(factor) = self.alert_rate_factor {
            alerts.rate_spike_factor = factor;
        }
        if let Some(minimum) = self.alert_rate_min {
            alerts.rate_spike_min_requests = minimum;
        }
    }
}
