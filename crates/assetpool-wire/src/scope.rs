//! Scopes: what a key's application, a user or a token may do.
//!
//! A scope is 1 to [`MAX_SCOPE_CHARS`] characters of `a-z 0-9 _ . : -`
//! ([`Scope::parse`]). A [`ScopeSet`] holds at most [`MAX_SCOPES`] distinct
//! scopes, sorted, [`MAX_SCOPE_SET_CHARS`] characters in all when written
//! out (so that a token carrying a whole set stays well within the size every
//! verifier accepts). Its text form is the scopes separated by one space, as
//! RFC 6749 section 3.3 writes them (`"orders:read orders:write"`); that is
//! also how it is serialised (the `scope` claim of RFC 9068, the `scope`
//! field of RFC 7662).
//!
//! Parsing is the one rule for every input (login, admin API, command line,
//! requirements, stored rows): bad text is refused with a [`ScopeError`]
//! whose message never repeats the text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Longest scope, in characters.
pub const MAX_SCOPE_CHARS: usize = 64;
/// Most scopes in one set.
pub const MAX_SCOPES: usize = 32;
/// Longest set written out (scopes and the spaces between them), in characters.
pub const MAX_SCOPE_SET_CHARS: usize = 1024;

/// Why a text is not a scope or a set of scopes. The messages never repeat
/// the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeError {
    /// Empty, too long, or a character outside `a-z 0-9 _ . : -`.
    Malformed,
    /// More than [`MAX_SCOPES`] scopes, or more than [`MAX_SCOPE_SET_CHARS`] characters.
    TooMany,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ScopeError::Malformed => {
                "a scope is 1 to 64 characters of a-z, 0-9, '_', '.', ':' and '-'"
            }
            ScopeError::TooMany => "a set holds at most 32 scopes, 1024 characters in all",
        })
    }
}

impl std::error::Error for ScopeError {}

fn is_scope_byte(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'_' | b'.' | b':' | b'-')
}

/// One scope (`orders:read`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(Box<str>);

impl Scope {
    /// Parses one scope: 1 to 64 characters of `a-z 0-9 _ . : -`.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let valid =
            !text.is_empty() && text.len() <= MAX_SCOPE_CHARS && text.bytes().all(is_scope_byte);
        if valid {
            Ok(Scope(text.into()))
        } else {
            Err(ScopeError::Malformed)
        }
    }

    /// The scope's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, formatter)
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A set of distinct scopes, kept sorted. It may be empty: a key, user or
/// token restricted to nothing. Who carries no set at all
/// (`Option<ScopeSet>::None`) is unrestricted.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Box<[Scope]>);

impl ScopeSet {
    /// The empty set.
    pub fn empty() -> ScopeSet {
        ScopeSet::default()
    }

    /// Parses scopes separated by spaces (`"a b"`; repeated spaces and
    /// repeated scopes are allowed, the empty text is the empty set).
    pub fn parse(text: &str) -> Result<ScopeSet, ScopeError> {
        if text.len() > MAX_SCOPE_SET_CHARS * 2 {
            return Err(ScopeError::TooMany);
        }
        ScopeSet::from_list(text.split(' ').filter(|part| !part.is_empty()))
    }

    /// The set of `scopes` (each parsed; repetitions count once).
    pub fn from_list<I>(scopes: I) -> Result<ScopeSet, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for text in scopes {
            if parsed.len() > MAX_SCOPES * 4 {
                return Err(ScopeError::TooMany);
            }
            parsed.push(Scope::parse(text.as_ref())?);
        }
        ScopeSet::from_scopes(parsed)
    }

    fn from_scopes(mut scopes: Vec<Scope>) -> Result<ScopeSet, ScopeError> {
        scopes.sort_unstable();
        scopes.dedup();
        let written: usize = scopes.iter().map(|scope| scope.0.len()).sum::<usize>()
            + scopes.len().saturating_sub(1);
        if scopes.len() > MAX_SCOPES || written > MAX_SCOPE_SET_CHARS {
            return Err(ScopeError::TooMany);
        }
        Ok(ScopeSet(scopes.into_boxed_slice()))
    }

    /// Whether the set holds no scope.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many scopes the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0
            .binary_search_by(|candidate| candidate.as_str().cmp(scope))
            .is_ok()
    }

    /// Whether every scope of the set is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.iter().all(|scope| other.contains(scope.as_str()))
    }

    /// The scopes in both sets.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        let common: Vec<Scope> = self
            .iter()
            .filter(|scope| other.contains(scope.as_str()))
            .cloned()
            .collect();
        ScopeSet(common.into_boxed_slice())
    }

    /// The scopes of both sets, if the union stays within the limits.
    pub fn union(&self, other: &ScopeSet) -> Result<ScopeSet, ScopeError> {
        ScopeSet::from_scopes(self.iter().chain(other.iter()).cloned().collect())
    }

    /// The scopes as strings, sorted (the JSON list form, `"scopes": [..]`).
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(|scope| scope.as_str().to_owned()).collect()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The text form: the scopes separated by one space.
impl fmt::Display for ScopeSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, scope) in self.iter().enumerate() {
            if index > 0 {
                formatter.write_str(" ")?;
            }
            formatter.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_set().entries(self.iter()).finish()
    }
}

impl std::str::FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ScopeSet::parse(text)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        ScopeSet::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The sorted JSON list of a set that may be absent (`null`: unrestricted),
/// the `"scopes"` of keys, users and `/v1/resource`.
pub fn scope_list(scopes: Option<&ScopeSet>) -> Option<Vec<String>> {
    scopes.map(ScopeSet::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_short_words_of_a_small_alphabet() {
        for good in ["a", "orders:read", "a.b_c-d:e", "0", &"x".repeat(64)] {
            assert_eq!(Scope::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Orders",
            "a b",
            "a\tb",
            "ä",
            "a/b",
            "a=b",
            "a,b",
            "a\"b",
            &"x".repeat(65),
        ] {
            assert_eq!(Scope::parse(bad), Err(ScopeError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn sets_are_sorted_without_repetition() {
        let set = ScopeSet::parse("  write  read write ").unwrap();
        assert_eq!(set.to_string(), "read write");
        assert_eq!(set.to_vec(), vec!["read", "write"]);
        assert!(set.contains("read") && !set.contains("admin"));
        assert_eq!(ScopeSet::parse("").unwrap(), ScopeSet::empty());
        assert!(ScopeSet::parse("read WRITE").is_err());
        assert_eq!(
            ScopeSet::from_list(["b", "a", "b"]).unwrap(),
            ScopeSet::parse("a b").unwrap()
        );
    }

    #[test]
    fn sets_are_bounded() {
        let many: Vec<String> = (0..33).map(|index| format!("s{index}")).collect();
        assert_eq!(ScopeSet::from_list(&many), Err(ScopeError::TooMany));
        assert!(ScopeSet::from_list(&many[..32]).is_ok());
        let long: Vec<String> = (0..16).map(|index| format!("{index:064}")).collect();
        assert_eq!(ScopeSet::from_list(&long), Err(ScopeError::TooMany));
        assert_eq!(
            ScopeSet::parse(&"a ".repeat(5000)),
            Err(ScopeError::TooMany)
        );
    }

    #[test]
    fn set_algebra() {
        let read_write = ScopeSet::parse("read write").unwrap();
        let read = ScopeSet::parse("read").unwrap();
        assert!(read.is_subset(&read_write));
        assert!(!read_write.is_subset(&read));
        assert!(ScopeSet::empty().is_subset(&read));
        assert_eq!(read_write.intersection(&read), read);
        assert_eq!(
            read.union(&ScopeSet::parse("admin").unwrap())
                .unwrap()
                .to_string(),
            "admin read"
        );
    }

    #[test]
    fn the_text_form_is_the_serialised_form() {
        let set = ScopeSet::parse("b a").unwrap();
        assert_eq!(serde_json::to_string(&set).unwrap(), r#""a b""#);
        let parsed: ScopeSet = serde_json::from_str(r#""a  b""#).unwrap();
        assert_eq!(parsed, set);
        assert!(serde_json::from_str::<ScopeSet>(r#""A""#).is_err());
        let error = ScopeError::Malformed.to_string();
        assert!(!error.contains("A\""), "{error}");
    }
}
