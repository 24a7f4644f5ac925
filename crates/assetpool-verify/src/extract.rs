//! axum extractors (feature `axum`).

use crate::claims::AccessClaims;
use crate::error::VerifyError;
use crate::verifier::Verifier;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

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

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}
