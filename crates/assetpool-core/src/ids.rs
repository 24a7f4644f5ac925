//! Identifiers: a short type prefix and a time-ordered UUID (v7), e.g. `key_0190f7...`.
//!
//! Each kind of record has its own id type ([`KeyId`], [`ApplicationId`],
//! [`UserId`], [`SessionId`], [`SigningKeyId`], [`AlertId`]), so one kind of
//! id cannot be passed where another is expected. They serialise as the bare
//! string, print as it (`Display` and `Debug`), and accept any string read
//! from storage or a request (`From<String>`): an id that names nothing is
//! simply not found.

use uuid::Uuid;

fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

/// Declares an id newtype over `String` whose [`new`](KeyId::new) makes
/// `<prefix>_<uuidv7>`.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("A new id: `", $prefix, "_` and a time-ordered UUID.")]
            // No `Default`: a default id would be a fresh random one, which
            // reads like a placeholder where it is not.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                $name(prefixed($prefix))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name(text.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, formatter)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// An API key's id (`key_...`).
    KeyId,
    "key"
);
id_type!(
    /// An application's id (`app_...`).
    ApplicationId,
    "app"
);
id_type!(
    /// A user's id (`usr_...`).
    UserId,
    "usr"
);
id_type!(
    /// A login session's id (`ses_...`, the `sid` claim).
    SessionId,
    "ses"
);
// The revoked sessions are looked up by the `sid` claim of a token (text).
impl std::borrow::Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

// The disabled keys are looked up by the `key_id` claim of a token (text).
impl std::borrow::Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

id_type!(
    /// A token-signing key's id (`sig_...`, the `kid` header).
    SigningKeyId,
    "sig"
);
id_type!(
    /// An alert's id (`alr_...`).
    AlertId,
    "alr"
);

/// A new token id (`jti`).
pub fn new_token_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A new webhook delivery id.
pub fn new_delivery_id() -> String {
    prefixed("dlv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_carry_their_prefix_and_differ() {
        let key = KeyId::new();
        assert!(key.as_str().starts_with("key_"));
        assert_eq!(key.as_str().len(), "key_".len() + 32);
        assert_ne!(key, KeyId::new());
        assert!(ApplicationId::new().as_str().starts_with("app_"));
        assert!(UserId::new().as_str().starts_with("usr_"));
        assert!(SessionId::new().as_str().starts_with("ses_"));
        assert!(SigningKeyId::new().as_str().starts_with("sig_"));
        assert!(AlertId::new().as_str().starts_with("alr_"));
    }

    #[test]
    fn an_id_serialises_and_prints_as_its_string() {
        let id = UserId::from("usr_0190f7".to_owned());
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""usr_0190f7""#);
        let back: UserId = serde_json::from_str(r#""usr_0190f7""#).unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "usr_0190f7");
        assert_eq!(format!("{id:?}"), format!("{:?}", "usr_0190f7"));
        assert_eq!(id.clone().into_string(), "usr_0190f7");
        // Any text is accepted: an id naming nothing is simply not found.
        let odd: KeyId = serde_json::from_str(r#""not an id""#).unwrap();
        assert_eq!(odd.as_str(), "not an id");
    }
}
