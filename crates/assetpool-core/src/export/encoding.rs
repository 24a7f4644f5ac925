//! How fields of an export are written, for `#[serde(with = ...)]`: times as
//! integer milliseconds, secret hashes as hex, bytes as base64. Errors never
//! repeat the value read.

/// Times as integer milliseconds since the epoch.
pub(super) mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// The instant, refusing one outside chrono's range.
    pub(super) fn time<E: serde::de::Error>(millis: i64) -> Result<DateTime<Utc>, E> {
        DateTime::from_timestamp_millis(millis).ok_or_else(|| E::custom("a time is out of range"))
    }

    pub(in crate::export) fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(time.timestamp_millis())
    }

    pub(in crate::export) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        time(i64::deserialize(deserializer)?)
    }
}

/// Optional times as integer milliseconds since the epoch, or `null`.
pub(super) mod optional_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    // `&Option<_>`: the signature serde's `with` expects.
    pub(in crate::export) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_some(&time.timestamp_millis()),
            None => serializer.serialize_none(),
        }
    }

    pub(in crate::export) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<i64>::deserialize(deserializer)?
            .map(super::millis::time)
            .transpose()
    }
}

/// A [`SecretHash`] as 64 lowercase hex characters.
pub(super) mod hex_hash {
    use crate::SecretHash;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(in crate::export) fn serialize<S: Serializer>(
        hash: &SecretHash,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash.to_hex())
    }

    pub(in crate::export) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SecretHash, D::Error> {
        let text = String::deserialize(deserializer)?;
        // The message never repeats the value.
        SecretHash::from_hex(&text.to_ascii_lowercase())
            .ok_or_else(|| D::Error::custom("a hash must be 64 hex characters"))
    }
}

/// Bytes as standard base64.
pub(super) mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(in crate::export) fn serialize<S: Serializer>(
        bytes: &[u8],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(in crate::export) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("a public key must be base64"))
    }
}

/// An optional allow-list as its list of normalised CIDRs, checked when read
/// (a bad entry fails the import instead of a later read of the key).
pub(super) mod allowed_networks {
    use crate::allowed_networks::AllowedNetworks;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize as _, Serializer};

    // `&Option<_>`: the signature serde's `with` expects.
    pub(in crate::export) fn serialize<S: Serializer>(
        networks: &Option<AllowedNetworks>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        networks
            .as_ref()
            .map(AllowedNetworks::to_strings)
            .serialize(serializer)
    }

    pub(in crate::export) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<AllowedNetworks>, D::Error> {
        Option::<Vec<String>>::deserialize(deserializer)?
            .map(|texts| AllowedNetworks::parse(&texts).map_err(D::Error::custom))
            .transpose()
    }
}

/// Optional key metadata as its JSON object.
pub(super) mod key_metadata {
    use crate::key_metadata::KeyMetadata;
    use serde::{Deserialize, Deserializer, Serialize as _, Serializer};
    use serde_json::{Map, Value};

    // `&Option<_>`: the signature serde's `with` expects.
    pub(in crate::export) fn serialize<S: Serializer>(
        metadata: &Option<KeyMetadata>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        metadata
            .as_ref()
            .map(KeyMetadata::as_map)
            .serialize(serializer)
    }

    pub(in crate::export) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<KeyMetadata>, D::Error> {
        Ok(Option::<Map<String, Value>>::deserialize(deserializer)?.map(KeyMetadata::from_export))
    }
}
