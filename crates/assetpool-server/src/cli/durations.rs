//! Options that take a length of time: bare seconds or the grammar of
//! [`assetpool_core::period`] (`90s`, `15m`, `24h`, `7d`), checked against
//! the option's range. The config file's values go through the same parser
//! ([`super::layers`]).

use assetpool_core::period::parse_seconds;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use std::ops::RangeInclusive;

/// A value parser of whole seconds within a range.
#[derive(Debug, Clone)]
pub struct Seconds {
    range: RangeInclusive<u64>,
}

impl Seconds {
    /// Seconds within `range` (inclusive).
    pub fn within(range: RangeInclusive<u64>) -> Self {
        Seconds { range }
    }
}

impl TypedValueParser for Seconds {
    type Value = u64;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<u64, clap::Error> {
        let option = arg.map_or_else(|| "the value".to_owned(), |arg| format!("'{arg}'"));
        let refuse = |reason: String| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{}' for {option}: {reason}\n",
                    value.to_string_lossy()
                ),
            )
            .with_cmd(command)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("not UTF-8".to_owned()))?;
        let seconds = parse_seconds(text).map_err(|error| refuse(error.to_string()))?;
        if !self.range.contains(&seconds) {
            return Err(refuse(format!(
                "must be between {} and {} seconds (a bare number is seconds; 90s, 15m, 24h, 7d also work)",
                self.range.start(),
                self.range.end()
            )));
        }
        Ok(seconds)
    }
}
