//! The tower [`Layer`] that verifies every request's token before the inner
//! service sees it.

use crate::error::VerifyError;
use crate::verifier::Verifier;
use assetpool_wire::{ScopeError, ScopeSet};
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Verifies the token of every request with a [`Verifier`]; a refused request
/// is answered at once (the contract's status, body and `WWW-Authenticate`), an
/// accepted one reaches the inner service with its
/// [`AccessClaims`](crate::AccessClaims) in the request extensions.
///
/// With [`VerifyLayer::require_scope`], a valid token without every scope
/// required is refused with 403 `insufficient_scope` (RFC 6750:
/// `WWW-Authenticate: Bearer realm="assetpool", error="insufficient_scope",
/// scope="..."`).
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Verifier,
    required: Option<ScopeSet>,
}

impl VerifyLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        VerifyLayer {
            verifier,
            required: None,
        }
    }

    /// The same layer, also requiring `scopes` (space-separated, each 1 to
    /// 64 characters of `a-z 0-9 _ . : -`) of every request: a token must
    /// have all of them (one with no `scope` claim, unrestricted, has).
    /// Called again, the requirements add up.
    pub fn require_scope(mut self, scopes: &str) -> Result<Self, ScopeError> {
        let scopes = ScopeSet::parse(scopes)?;
        self.required = Some(match self.required {
            Some(required) => required.union(&scopes)?,
            None => scopes,
        });
        Ok(self)
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            required: self.required.clone(),
        }
    }
}

/// The service made by [`VerifyLayer`].
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    required: Option<ScopeSet>,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for VerifyService<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RequestBody: Send + 'static,
    ResponseBody: From<String> + Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> Self::Future {
        // The clone that was made ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let required = self.required.clone();
        Box::pin(async move {
            let verified = verifier
                .verify_headers(request.headers())
                .await
                .and_then(|claims| match required {
                    Some(required) if !claims.has_scopes(&required) => {
                        Err(VerifyError::InsufficientScope { required })
                    }
                    _ => Ok(claims),
                });
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.to_response()),
            }
        })
    }
}
