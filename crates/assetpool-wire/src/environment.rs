//! The three deployment environments a key, a server and a token belong to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A deployment environment. Serialised with its full name everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// `development` (short form `dev`).
    Development,
    /// `staging` (short form `stg`).
    Staging,
    /// `production` (short form `prod`).
    Production,
}

impl Environment {
    /// Every environment, in order.
    pub const ALL: [Environment; 3] = [
        Environment::Development,
        Environment::Staging,
        Environment::Production,
    ];

    /// The full name: `development`, `staging` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// The short name used inside API keys: `dev`, `stg` or `prod`.
    pub fn short_name(self) -> &'static str {
        match self {
            Environment::Development => "dev",
            Environment::Staging => "stg",
            Environment::Production => "prod",
        }
    }

    /// Accepts the full or the short name (case-sensitive, as written in the contract).
    pub fn parse(text: &str) -> Result<Self, ParseEnvironmentError> {
        match text {
            "development" | "dev" => Ok(Environment::Development),
            "staging" | "stg" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(ParseEnvironmentError),
        }
    }

    /// Accepts only the short name used in keys.
    pub fn from_short_name(text: &str) -> Option<Self> {
        Environment::ALL
            .into_iter()
            .find(|environment| environment.short_name() == text)
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = ParseEnvironmentError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Environment::parse(text)
    }
}

/// The text named no known environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnvironmentError;

impl fmt::Display for ParseEnvironmentError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "unknown environment: expected development, staging or production (or dev, stg, prod)",
        )
    }
}

impl std::error::Error for ParseEnvironmentError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_names() {
        for environment in Environment::ALL {
            assert_eq!(Environment::parse(environment.as_str()), Ok(environment));
            assert_eq!(
                Environment::parse(environment.short_name()),
                Ok(environment)
            );
            assert_eq!(
                Environment::from_short_name(environment.short_name()),
                Some(environment)
            );
        }
        assert!(Environment::parse("Production").is_err());
        assert!(Environment::parse("").is_err());
    }

    #[test]
    fn serialises_full_name() {
        let json = serde_json::to_string(&Environment::Staging).unwrap();
        assert_eq!(json, "\"staging\"");
    }
}
