//! Async client SDK of assetpool.
//!
//! A [`Client`] is built from the server's base URL, an API key and a user's
//! credentials (or from the `ASSETPOOL_*` environment). It logs in on first
//! use, attaches `x-api-key` and `x-api-token` to every request it sends, and
//! renews the access token before it expires: with the refresh token first, by
//! logging in again when that fails. However many tasks need a token at the
//! same moment, one renewal happens (single flight).
//!
//! A 401 `token_expired` or `token_revoked` renews the token and retries once;
//! 503 `overloaded` is retried with backoff, honouring `Retry-After`
//! ([`RetryPolicy`]). Every other refusal is an [`Error::Api`] carrying the
//! contract's [`ErrorCode`]. `Debug` never shows the API key, the password or a token.
//!
//! Credentials stay on the server's origin (the scheme, host and port of the
//! base URL). The client follows no redirect: a 3xx answer (other than 304) is
//! [`Error::Redirect`], whether to a login, a refresh or any request of
//! [`Client::send`], since following it would hand the API key, the token or the
//! password (307 and 308 re-send the body) to whatever the `Location` names.
//! Request paths must start with `/` (a path such as `@other.example/` would
//! otherwise change the host), and [`Client::send`] refuses a request built for
//! another origin.
//!
//! ```no_run
//! use assetpool_client::{Client, Credentials, Error};
//! use assetpool_wire::{ResourceResponse, RESOURCE_PATH};
//!
//! # async fn run() -> Result<(), Error> {
//! let client = Client::builder(
//!     "http://127.0.0.1:8080",
//!     "apk_prod_...",
//!     Credentials::new("alice@example.com", "correct horse battery staple"),
//! )
//! .build()?;
//! // Any endpoint of the protected API: build the request, let the client send it.
//! let response = client.send(client.get(RESOURCE_PATH)?).await?;
//! let who: ResourceResponse = response.json().await.map_err(|e| Error::Decode(e.to_string()))?;
//! println!("{}", who.user.email);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod client;
mod config;
mod error;

pub use assetpool_wire::ErrorCode;
pub use client::{Client, ClientStats, RequestBuilderExt};
pub use config::{
    ClientBuilder, Credentials, RenewalPolicy, RetryPolicy, API_KEY_ENV, PASSWORD_ENV, URL_ENV,
    USERNAME_ENV,
};
pub use error::{ApiError, Error};
