//! Identifiers: a short type prefix and a time-ordered UUID (v7), e.g. `key_0190f7...`.

use uuid::Uuid;

fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

/// A new API key id.
pub fn new_key_id() -> String {
    prefixed("key")
}

/// A new application id.
pub fn new_application_id() -> String {
    prefixed("app")
}

/// A new user id.
pub fn new_user_id() -> String {
    prefixed("usr")
}

/// A new session id.
pub fn new_session_id() -> String {
    prefixed("ses")
}

/// A new token id (`jti`).
pub fn new_token_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A new signing key id (`kid`).
pub fn new_signing_key_id() -> String {
    prefixed("sig")
}

/// A new alert id.
pub fn new_alert_id() -> String {
    prefixed("alr")
}

/// A new webhook delivery id.
pub fn new_delivery_id() -> String {
    prefixed("dlv")
}
