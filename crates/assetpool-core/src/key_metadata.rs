//! Support staff's notes on a key (`--metadata`, `metadata`): a JSON object
//! of bounded size, held to the control-character rule like every other text.

use assetpool_wire::text::contains_control;
use serde_json::{Map, Value};

/// Largest metadata accepted, serialised (compact JSON).
pub const MAX_METADATA_BYTES: usize = 4096;

/// A key's metadata: a JSON object of at most [`MAX_METADATA_BYTES`]
/// serialised, with no control character in any key or string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata(Map<String, Value>);

/// Why a value is not metadata. The messages never repeat the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyMetadataError {
    /// Not JSON at all.
    #[error("the metadata is not valid JSON")]
    Malformed,
    /// JSON, but not an object.
    #[error("the metadata must be a JSON object")]
    NotAnObject,
    /// Over [`MAX_METADATA_BYTES`].
    #[error("the metadata is larger than 4 KiB serialised")]
    TooLarge,
    /// A key or string holds a control character.
    #[error("the metadata may not contain control characters")]
    ControlCharacter,
}

impl KeyMetadata {
    /// Parses the text form (the command line's `--metadata`).
    pub fn parse(text: &str) -> Result<Self, KeyMetadataError> {
        let value: Value = serde_json::from_str(text).map_err(|_| KeyMetadataError::Malformed)?;
        Self::from_value(value)
    }

    /// Checks a JSON value (the admin API's `metadata`).
    pub fn from_value(value: Value) -> Result<Self, KeyMetadataError> {
        let Value::Object(object) = value else {
            return Err(KeyMetadataError::NotAnObject);
        };
        let metadata = KeyMetadata(object);
        if metadata.to_storage().len() > MAX_METADATA_BYTES {
            return Err(KeyMetadataError::TooLarge);
        }
        if holds_control(&Value::Object(metadata.0.clone())) {
            return Err(KeyMetadataError::ControlCharacter);
        }
        Ok(metadata)
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The storage form: compact JSON.
    pub fn to_storage(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// Reads the storage form back: any JSON object. What was stored is
    /// not judged again (a rule tightened later must not make a stored key
    /// unreadable); it is shown escaped.
    pub fn from_storage(text: &str) -> Result<Self, KeyMetadataError> {
        match serde_json::from_str(text).map_err(|_| KeyMetadataError::Malformed)? {
            Value::Object(object) => Ok(KeyMetadata(object)),
            _ => Err(KeyMetadataError::NotAnObject),
        }
    }

    /// Metadata as an export carries it (written by an export of stored
    /// metadata, so not judged again, as [`KeyMetadata::from_storage`]).
    pub fn from_export(object: Map<String, Value>) -> Self {
        KeyMetadata(object)
    }
}

fn holds_control(value: &Value) -> bool {
    match value {
        Value::String(text) => contains_control(text),
        Value::Array(items) => items.iter().any(holds_control),
        Value::Object(object) => object
            .iter()
            .any(|(key, value)| contains_control(key) || holds_control(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_up_to_the_limit_are_metadata() {
        let metadata =
            KeyMetadata::parse(r#"{"team": "billing", "tier": 2, "tags": ["a"]}"#).unwrap();
        assert_eq!(metadata.as_map()["team"], "billing");
        assert_eq!(
            KeyMetadata::from_storage(&metadata.to_storage()).unwrap(),
            metadata
        );
        // {"x":"..."} is 8 bytes around the string.
        let largest = json!({ "x": "a".repeat(MAX_METADATA_BYTES - 8) });
        assert!(KeyMetadata::from_value(largest).is_ok());
        let over = json!({ "x": "a".repeat(MAX_METADATA_BYTES - 7) });
        assert_eq!(
            KeyMetadata::from_value(over),
            Err(KeyMetadataError::TooLarge)
        );
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(
            KeyMetadata::parse("[1, 2]"),
            Err(KeyMetadataError::NotAnObject)
        );
        assert_eq!(
            KeyMetadata::parse("\"text\""),
            Err(KeyMetadataError::NotAnObject)
        );
        assert_eq!(KeyMetadata::parse("{"), Err(KeyMetadataError::Malformed));
        assert_eq!(
            KeyMetadata::from_value(json!({"a": {"b": ["\u{1b}[2J"]}})),
            Err(KeyMetadataError::ControlCharacter)
        );
        assert_eq!(
            KeyMetadata::from_value(json!({"a\nb": 1})),
            Err(KeyMetadataError::ControlCharacter)
        );
    }
}
