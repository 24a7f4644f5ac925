//! `--scope S` (repeatable) and `--scopes none`, of `keys create|update`
//! and `users create|update`.

use assetpool_core::ScopeSet;

/// `--scope` of the create commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScopeArgs {
    /// Restrict to this scope (repeatable; 1 to 64 characters of a-z 0-9 _ . : -,
    /// several may also be given space-separated). Without any: unrestricted.
    #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scopes)]
    scope: Vec<ScopeSet>,
}

impl ScopeArgs {
    /// The set given (`None`: unrestricted).
    pub fn set(&self) -> anyhow::Result<Option<ScopeSet>> {
        union(&self.scope)
    }
}

/// `--scope` and `--scopes none` of the update commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScopeUpdateArgs {
    /// Replace the scopes with these (repeatable; space-separated also works).
    #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scopes)]
    scope: Vec<ScopeSet>,
    /// `none`: make it unrestricted.
    #[arg(long = "scopes", value_name = "none", value_parser = parse_none, conflicts_with = "scope")]
    scopes: Option<Unrestricted>,
}

impl ScopeUpdateArgs {
    /// Whether neither option was given.
    pub fn is_empty(&self) -> bool {
        self.scope.is_empty() && self.scopes.is_none()
    }

    /// The change: `None` when none was given, `Some(None)` for `--scopes none`.
    pub fn change(&self) -> anyhow::Result<Option<Option<ScopeSet>>> {
        if self.scopes.is_some() {
            return Ok(Some(None));
        }
        Ok(union(&self.scope)?.map(Some))
    }
}

/// `--scopes none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unrestricted;

fn parse_none(text: &str) -> Result<Unrestricted, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        Ok(Unrestricted)
    } else {
        Err("the only value is none (unrestricted); give the scopes with --scope".to_owned())
    }
}

fn parse_scopes(text: &str) -> Result<ScopeSet, String> {
    let scopes = ScopeSet::parse(text).map_err(|error| error.to_string())?;
    if scopes.is_empty() {
        return Err("a scope is 1 to 64 characters of a-z, 0-9, '_', '.', ':' and '-'".to_owned());
    }
    Ok(scopes)
}

/// The union of the sets given; `None` when none was.
fn union(sets: &[ScopeSet]) -> anyhow::Result<Option<ScopeSet>> {
    let mut all: Option<ScopeSet> = None;
    for set in sets {
        all = Some(match all {
            Some(so_far) => so_far
                .union(set)
                .map_err(|error| anyhow::anyhow!("invalid --scope: {error}"))?,
            None => set.clone(),
        });
    }
    Ok(all)
}

/// Scopes as the human output shows them: sorted, space-separated, or
/// `(unrestricted)`, `(none)` for an empty set.
pub fn describe(scopes: Option<&[String]>) -> String {
    match scopes {
        None => "(unrestricted)".to_owned(),
        Some([]) => "(none)".to_owned(),
        Some(scopes) => scopes.join(" "),
    }
}
