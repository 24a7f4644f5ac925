//! The rules of scopes (docs: README "Scopes"). Who has no set of scopes
//! (`None`) is unrestricted; a set, even empty, restricts.
//!
//! - A login is granted the intersection of the restricted sets among its
//!   API key's, its user's and the ones it asked for ([`grant`]); asking for
//!   a scope outside what key and user allow is refused.
//! - A refresh keeps the session's grant, within the presented key's current
//!   scopes ([`restrict`]).
//! - A request's scopes are its token's within the presented key's current
//!   ones ([`EffectiveScopes`]), so narrowing a key narrows its live tokens
//!   as soon as the server learns of it, and widening it never widens them.
//! - Narrowing a user's scopes ends the user's sessions granted a scope
//!   outside the new set ([`session_survives`]).

pub use assetpool_wire::{Scope, ScopeError, ScopeSet};

/// The intersection of two sets where `None` is unrestricted: `None` only
/// when both are.
pub fn restrict(first: Option<&ScopeSet>, second: Option<&ScopeSet>) -> Option<ScopeSet> {
    match (first, second) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(only.clone()),
        (Some(first), Some(second)) => Some(first.intersection(second)),
    }
}

/// Whether `requested` asks for nothing outside `allowed` (`None`:
/// unrestricted, allows anything; nothing requested asks for nothing).
pub fn allows(allowed: Option<&ScopeSet>, requested: Option<&ScopeSet>) -> bool {
    match (allowed, requested) {
        (Some(allowed), Some(requested)) => requested.is_subset(allowed),
        _ => true,
    }
}

/// A request for a scope outside what the API key and the user allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideAllowed;

/// The scopes a login is granted: the intersection of the restricted sets
/// among the key's, the user's and the requested ones; `Err` when the
/// request names a scope the key or the user does not allow.
pub fn grant(
    key: Option<&ScopeSet>,
    user: Option<&ScopeSet>,
    requested: Option<&ScopeSet>,
) -> Result<Option<ScopeSet>, OutsideAllowed> {
    if !allows(key, requested) || !allows(user, requested) {
        return Err(OutsideAllowed);
    }
    let allowed = restrict(key, user);
    Ok(restrict(allowed.as_ref(), requested))
}

/// Whether a live session granted `granted` stays live once its user's
/// scopes become `user`: only if the grant is within them (an unrestricted
/// grant survives only an unrestricted user).
pub fn session_survives(granted: Option<&ScopeSet>, user: Option<&ScopeSet>) -> bool {
    match (granted, user) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(granted), Some(user)) => granted.is_subset(user),
    }
}

/// The scopes of an accepted request: its token's, within the presented
/// key's current ones. A view of the two sets; nothing is allocated to read
/// or check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveScopes<'a> {
    /// Neither the token nor the key restricts: every requirement is met.
    Unrestricted,
    /// One of them restricts.
    Only(&'a ScopeSet),
    /// Both restrict: the scopes in both.
    Both(&'a ScopeSet, &'a ScopeSet),
}

impl<'a> EffectiveScopes<'a> {
    /// The scopes of a token carrying `token` presented with a key carrying `key`.
    pub fn of(token: Option<&'a ScopeSet>, key: Option<&'a ScopeSet>) -> Self {
        match (token, key) {
            (None, None) => EffectiveScopes::Unrestricted,
            (Some(only), None) | (None, Some(only)) => EffectiveScopes::Only(only),
            (Some(token), Some(key)) => EffectiveScopes::Both(token, key),
        }
    }

    /// Whether anything restricts the request.
    pub fn is_restricted(&self) -> bool {
        !matches!(self, EffectiveScopes::Unrestricted)
    }

    /// Whether the request has `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        match self {
            EffectiveScopes::Unrestricted => true,
            EffectiveScopes::Only(set) => set.contains(scope),
            EffectiveScopes::Both(first, second) => first.contains(scope) && second.contains(scope),
        }
    }

    /// Whether the request has every scope of `requirement`.
    pub fn satisfies(&self, requirement: &ScopeSet) -> bool {
        match self {
            EffectiveScopes::Unrestricted => true,
            _ => requirement
                .iter()
                .all(|scope| self.contains(scope.as_str())),
        }
    }

    /// The scopes, sorted (none when unrestricted: see [`Self::is_restricted`]).
    pub fn iter(&self) -> impl Iterator<Item = &'a Scope> + 'a {
        let (first, second): (Option<&'a ScopeSet>, Option<&'a ScopeSet>) = match *self {
            EffectiveScopes::Unrestricted => (None, None),
            EffectiveScopes::Only(set) => (Some(set), None),
            EffectiveScopes::Both(first, second) => (Some(first), Some(second)),
        };
        first
            .into_iter()
            .flat_map(|set| set.iter())
            .filter(move |scope| second.is_none_or(|second| second.contains(scope.as_str())))
    }

    /// The scopes as a set (`None` when unrestricted).
    pub fn to_set(&self) -> Option<ScopeSet> {
        match *self {
            EffectiveScopes::Unrestricted => None,
            EffectiveScopes::Only(set) => Some(set.clone()),
            EffectiveScopes::Both(first, second) => Some(first.intersection(second)),
        }
    }

    /// The scopes, space-separated (`None` when unrestricted; `""` when
    /// restricted to none).
    pub fn to_text(&self) -> Option<String> {
        if !self.is_restricted() {
            return None;
        }
        let mut text = String::new();
        for scope in self.iter() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(scope.as_str());
        }
        Some(text)
    }

    /// The scopes as a sorted list (`None` when unrestricted), the JSON `"scopes"`.
    pub fn to_list(&self) -> Option<Vec<String>> {
        self.is_restricted()
            .then(|| self.iter().map(|scope| scope.as_str().to_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    #[test]
    fn a_grant_is_the_intersection_of_the_restricted_sets() {
        let read_write = set("read write");
        let read = set("read");
        assert_eq!(grant(None, None, None), Ok(None));
        assert_eq!(
            grant(Some(&read_write), None, None),
            Ok(Some(read_write.clone()))
        );
        assert_eq!(
            grant(Some(&read_write), Some(&set("read admin")), None),
            Ok(Some(read.clone()))
        );
        assert_eq!(grant(None, None, Some(&read)), Ok(Some(read.clone())));
        assert_eq!(
            grant(Some(&read_write), None, Some(&read)),
            Ok(Some(read.clone()))
        );
        // Restricted to nothing is a restriction, not the absence of one.
        assert_eq!(
            grant(Some(&read), Some(&set("write")), None),
            Ok(Some(ScopeSet::empty()))
        );
        assert_eq!(
            grant(None, None, Some(&ScopeSet::empty())),
            Ok(Some(ScopeSet::empty()))
        );
    }

    #[test]
    fn asking_outside_the_key_or_the_user_is_refused() {
        let read = set("read");
        let write = set("write");
        assert_eq!(grant(Some(&read), None, Some(&write)), Err(OutsideAllowed));
        assert_eq!(grant(None, Some(&read), Some(&write)), Err(OutsideAllowed));
        // Each must allow the request, not only their union.
        assert_eq!(
            grant(Some(&read), Some(&write), Some(&set("read write"))),
            Err(OutsideAllowed)
        );
        assert!(allows(Some(&read), None));
        assert!(allows(None, Some(&write)));
    }

    #[test]
    fn narrowing_a_user_ends_the_sessions_it_does_not_cover() {
        let read = set("read");
        let read_write = set("read write");
        assert!(session_survives(Some(&read), Some(&read_write)));
        assert!(session_survives(None, None));
        assert!(session_survives(Some(&read_write), None));
        assert!(!session_survives(Some(&read_write), Some(&read)));
        assert!(!session_survives(None, Some(&read_write)));
        assert!(session_survives(Some(&ScopeSet::empty()), Some(&read)));
    }

    #[test]
    fn a_request_has_its_tokens_scopes_within_its_keys() {
        let read_write = set("read write");
        let read_admin = set("admin read");
        let unrestricted = EffectiveScopes::of(None, None);
        assert!(!unrestricted.is_restricted());
        assert!(unrestricted.satisfies(&set("anything")));
        assert_eq!(unrestricted.to_text(), None);
        assert_eq!(unrestricted.to_list(), None);

        let both = EffectiveScopes::of(Some(&read_write), Some(&read_admin));
        assert!(both.contains("read") && !both.contains("write") && !both.contains("admin"));
        assert!(both.satisfies(&set("read")));
        assert!(!both.satisfies(&set("read write")));
        assert!(both.satisfies(&ScopeSet::empty()));
        assert_eq!(both.to_text().as_deref(), Some("read"));
        assert_eq!(both.to_set(), Some(set("read")));

        let key_only = EffectiveScopes::of(None, Some(&read_admin));
        assert_eq!(
            key_only.to_list(),
            Some(vec!["admin".into(), "read".into()])
        );
        let empty = ScopeSet::empty();
        let none = EffectiveScopes::of(Some(&empty), None);
        assert!(none.is_restricted());
        assert_eq!(none.to_text().as_deref(), Some(""));
        assert!(!none.satisfies(&set("read")));
    }

    #[test]
    fn restricting_keeps_none_only_for_two_unrestricted_sets() {
        let read = set("read");
        assert_eq!(restrict(None, None), None);
        assert_eq!(restrict(Some(&read), None), Some(read.clone()));
        let write = set("write");
        assert_eq!(restrict(Some(&read), Some(&write)), Some(ScopeSet::empty()));
    }
}
