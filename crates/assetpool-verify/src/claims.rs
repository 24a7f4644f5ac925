//! The claims of a verified access token.

use assetpool_wire::ScopeSet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// The claims of an access token that passed verification (RFC 9068 profile).
///
/// The verify layer puts them into the request's extensions; handlers read them
/// from there (or, with the `axum` feature, take them as an extractor).
/// The fields are those of [`assetpool_wire::AccessClaims`], the token's wire
/// format, read through `Deref` (`claims.email`); [`AccessClaims::into_inner`]
/// gives them by value. This type wraps the wire one only so that it can be
/// an axum extractor (a crate cannot implement axum's traits for another
/// crate's type). `Debug` omits the email address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccessClaims(assetpool_wire::AccessClaims);

impl AccessClaims {
    /// The claims, by value.
    pub fn into_inner(self) -> assetpool_wire::AccessClaims {
        self.0
    }

    /// The token's scopes (its RFC 9068 `scope` claim): `None` when nothing
    /// restricted its login, in which case it meets every requirement.
    pub fn scopes(&self) -> Option<&ScopeSet> {
        self.0.scope.as_ref()
    }

    /// Whether the token has `scope` (always, when it is unrestricted).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().is_none_or(|scopes| scopes.contains(scope))
    }

    /// Whether the token has every scope of `required`.
    pub fn has_scopes(&self, required: &ScopeSet) -> bool {
        required.iter().all(|scope| self.has_scope(scope.as_str()))
    }
}

impl Deref for AccessClaims {
    type Target = assetpool_wire::AccessClaims;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<assetpool_wire::AccessClaims> for AccessClaims {
    fn as_ref(&self) -> &assetpool_wire::AccessClaims {
        &self.0
    }
}

impl From<assetpool_wire::AccessClaims> for AccessClaims {
    fn from(claims: assetpool_wire::AccessClaims) -> Self {
        AccessClaims(claims)
    }
}

impl From<AccessClaims> for assetpool_wire::AccessClaims {
    fn from(claims: AccessClaims) -> Self {
        claims.0
    }
}

impl fmt::Debug for AccessClaims {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}
