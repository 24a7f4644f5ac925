//! axum extractors (feature `axum`).

use crate::claims::AccessClaims;
use crate::error::VerifyError;
use crate::verifier::Verifier;
use assetpool_wire::ScopeSet;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

/// Behind a [`VerifyLayer`](crate::VerifyLayer), handlers take the claims as an
/// argument. Without the layer, every request is refused with 401 `missing_token`.
impl<S: Send + Sync> FromRequestParts<S> for AccessClaims {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessClaims>()
            .cloned()
            .ok_or(VerifyError::Missing)
    }
}

/// Verifies the request's token itself, with the [`Verifier`] of the router's
/// state (no layer needed): for routers where only some handlers are protected.
#[derive(Clone, Debug)]
pub struct Verified(pub AccessClaims);

impl<S> FromRequestParts<S> for Verified
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<AccessClaims>() {
            return Ok(Verified(claims.clone()));
        }
        let verifier = Verifier::from_ref(state);
        verifier.verify_headers(&parts.headers).await.map(Verified)
    }
}

/// The scopes a handler needs, stated as a type for [`Scoped`]:
///
/// ```
/// use assetpool_verify::ScopeRequirement;
///
/// struct OrdersWrite;
/// impl ScopeRequirement for OrdersWrite {
///     const SCOPES: &'static [&'static str] = &["orders:read", "orders:write"];
/// }
/// ```
pub trait ScopeRequirement {
    /// Every scope the handler needs (each 1 to 64 characters of
    /// `a-z 0-9 _ . : -`; a malformed one is met by no token, so a mistake
    /// refuses requests rather than letting them through).
    const SCOPES: &'static [&'static str];
}

/// The claims of a request whose token has every scope of `R`: a handler
/// states what it needs in its signature. Behind a
/// [`VerifyLayer`](crate::VerifyLayer) (which verifies the token); a token
/// without one of the scopes is refused with 403 `insufficient_scope` and
/// `WWW-Authenticate: Bearer realm="assetpool", error="insufficient_scope",
/// scope="..."` naming them all, a request the layer did not verify with
/// 401 `missing_token`. Reads as the claims (`scoped.email`).
///
/// ```no_run
/// use assetpool_verify::{ScopeRequirement, Scoped};
///
/// struct OrdersRead;
/// impl ScopeRequirement for OrdersRead {
///     const SCOPES: &'static [&'static str] = &["orders:read"];
/// }
///
/// async fn list_orders(caller: Scoped<OrdersRead>) -> String {
///     format!("orders of {}", caller.email)
/// }
/// ```
pub struct Scoped<R> {
    claims: AccessClaims,
    requirement: PhantomData<fn() -> R>,
}

impl<R> Scoped<R> {
    /// The claims, by value.
    pub fn into_claims(self) -> AccessClaims {
        self.claims
    }
}

impl<R> Deref for Scoped<R> {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.claims
    }
}

impl<R> Clone for Scoped<R> {
    fn clone(&self) -> Self {
        Scoped {
            claims: self.claims.clone(),
            requirement: PhantomData,
        }
    }
}

impl<R> fmt::Debug for Scoped<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("Scoped").field(&self.claims).finish()
    }
}

impl<S: Send + Sync, R: ScopeRequirement> FromRequestParts<S> for Scoped<R> {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = parts
            .extensions
            .get::<AccessClaims>()
            .cloned()
            .ok_or(VerifyError::Missing)?;
        let met = R::SCOPES.iter().all(|scope| claims.has_scope(scope));
        let valid = ScopeSet::from_list(R::SCOPES);
        match valid {
            Ok(_) if met => Ok(Scoped {
                claims,
                requirement: PhantomData,
            }),
            Ok(required) => Err(VerifyError::InsufficientScope { required }),
            Err(_) => Err(VerifyError::InsufficientScope {
                required: ScopeSet::empty(),
            }),
        }
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}
