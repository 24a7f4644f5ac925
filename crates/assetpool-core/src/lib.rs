//! The domain of assetpool, with no HTTP and no SQL in it.
//!
//! - [`api_key`]: the `apk_<env>_<body><check>` key format and its checksum;
//! - [`token`]: EdDSA access tokens (RFC 9068) and what is accepted;
//! - [`password`]: normalisation, policy and Argon2id hashing;
//! - [`store`]: the [`Store`] trait every storage backend implements;
//! - [`export`]: the JSON-lines format of `assetpool export` and `import`;
//! - [`service`]: the verify path, login, refresh and logout over in-memory state;
//! - [`admin`]: what support staff do (keys, users, signing keys);
//! - [`scopes`]: what keys, users and tokens may do, and how a grant is decided;
//! - [`period`]: the one grammar of periods (`24h`, `7d`) of the CLI and the admin API;
//! - [`webhook_target`]: which addresses owner webhooks may reach;
//! - [`allowed_networks`] and [`key_metadata`]: a key's allow-list of client
//!   networks and its notes.

pub mod admin;
pub mod alerts;
pub mod allowed_networks;
pub mod api_key;
pub mod audit_chain;
pub mod clock;
mod error;
pub mod export;
pub mod hashing;
pub mod ids;
pub mod key_metadata;
pub mod leaks;
pub mod limits;
pub mod password;
pub mod period;
pub mod scopes;
pub mod sealer;
pub mod service;
pub mod shared_limits;
pub mod store;
pub mod throttle;
pub mod token;
pub mod usage;
pub mod usage_batch;
pub mod webhook_target;

pub use api_key::{ApiKeyFormatError, ApiKeySecret, SecretHash};
pub use assetpool_wire::{ApiKeyStatus, ApplicationRole, Environment, ErrorCode, Scope, ScopeSet};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ServiceError;
pub use sealer::KeySealer;
pub use service::{AuthService, ServiceSettings};
pub use store::{Store, StoreError, StoreResult};
