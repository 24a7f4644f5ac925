//! Offline verification of assetpool access tokens for Rust backends.
//!
//! A backend that receives requests carrying an assetpool access token
//! (`x-api-token` or `Authorization: Bearer`) checks it without calling the
//! server for each request: a [`Verifier`] fetches the server's public keys
//! from `/.well-known/jwks.json`, caches them, refetches when a token names an
//! unknown `kid` (a signing-key rotation, at most once per minute), and checks
//! the EdDSA signature, `typ`, `exp` (with a small leeway), `iss`, `aud` and `env`.
//!
//! [`VerifyLayer`] runs that check in front of any tower service and puts the
//! [`AccessClaims`] into the request extensions; with the `axum` feature (on by
//! default) handlers take `AccessClaims` as an extractor, and `Verified`
//! verifies by itself from a `Verifier` in the router state.
//!
//! Scopes: the token's scopes (its `scope` claim) read through
//! [`AccessClaims::scopes`] and [`AccessClaims::has_scope`];
//! [`VerifyLayer::require_scope`] requires scopes of every request through
//! the layer, and [`Scoped`] lets one handler state its own
//! ([`ScopeRequirement`]). A token lacking one is refused with 403
//! `insufficient_scope`. A token's scopes are fixed when it is issued:
//! narrowing an API key's scopes reaches offline verification when the
//! token is refreshed or expires, whereas the server itself (and its
//! gateway) applies it at once.
//!
//! A signature says nothing about logouts and other revocations before the token
//! expires. [`VerifierBuilder::introspection`] adds a check against the server's
//! RFC 7662 endpoint (`POST /oauth/introspect`, authenticated by an API key),
//! its answers kept in a bounded cache for a short time to live, never past
//! the token's own expiry.
//!
//! [`VerifierBuilder::configure_http`] adjusts the verifier's HTTP client (a
//! proxy, a private CA). It follows no redirect, whatever that asks: a JWKS or introspection
//! answer of 3xx makes verification fail closed ([`VerifyError::Unavailable`]).
//! A followed redirect would let whatever the `Location` names supply the
//! signing keys, and would carry the API key and the token under introspection
//! (307 and 308 re-send the body) to it.
//!
//! ```no_run
//! use assetpool_verify::{AccessClaims, Verifier, VerifyLayer};
//! use assetpool_wire::Environment;
//! use axum::{routing::get, Router};
//!
//! async fn hello(claims: AccessClaims) -> String {
//!     format!("hello {}", claims.email)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://auth.example.com", Environment::Production).build()?;
//! let app: Router = Router::new()
//!     .route("/hello", get(hello))
//!     .layer(VerifyLayer::new(verifier));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod claims;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod introspect;
mod jwks;
mod layer;
mod verifier;

pub use assetpool_wire::{Environment, ErrorCode, Scope, ScopeError, ScopeSet};
pub use claims::AccessClaims;
pub use error::VerifyError;
#[cfg(feature = "axum")]
pub use extract::{ScopeRequirement, Scoped, Verified};
pub use layer::{VerifyLayer, VerifyService};
pub use verifier::{token_from_headers, Verifier, VerifierBuilder};
