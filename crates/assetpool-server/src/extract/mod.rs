//! Extractors and the parsing of what a request sends, at the edge:
//! - [`credentials`]: the API key and token, from headers only, and
//!   [`authenticate_request`], the check of every protected request;
//! - [`client_address`](mod@client_address): the client's address, believing forwarding headers
//!   only from `--trusted-proxy` networks;
//! - [`body`]: strict JSON and form bodies (16 KiB, no duplicate keys or
//!   parameters, no control characters) and the refusal of control
//!   characters in paths and queries;
//! - [`admin`]: the admin API's path segments, query strings and optional body;
//! - [`scheme`]: whether a request came over HTTPS (TLS, or a trusted proxy's word).

pub mod admin;
pub mod body;
pub mod client_address;
pub mod credentials;
pub mod scheme;

pub use admin::{AdminPath, OptionalJson, QueryParams};
pub(crate) use body::has_content_type;
pub use body::{
    check_json_text, parse_strict_form, parse_strict_json, refuse_control_characters, StrictForm,
    StrictJson, MAX_BODY_BYTES,
};
pub use client_address::{client_address, ClientAddress, TrustedProxies};
pub use credentials::{authenticate_request, Authenticated, PresentedCredentials};
