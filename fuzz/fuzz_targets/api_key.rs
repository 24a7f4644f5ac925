//! Fuzzes `ApiKeySecret::parse` (`apk_<env>_<32 base62><6 base62 CRC32>`).
//!
//! The first input byte picks a mode:
//! - even: the rest is the presented text as it is;
//! - odd: the rest drives `arbitrary` to build a valid key (any environment,
//!   any body, its correct checksum) and then edit it once, so the fuzzer
//!   reaches the checksum comparison and beyond.
//!
//! Every parse is compared with an independent model of the format (shape,
//! then CRC32 in base62); an accepted key must re-render to the same text,
//! keep its environment, hash to the SHA-256 of the text, and not show its
//! body in `prefix()` (beyond 6 characters) or in `Debug`. A key changed by
//! one edit is never accepted.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use assetpool_core::{ApiKeyFormatError, ApiKeySecret, Environment, SecretHash};
use libfuzzer_sys::fuzz_target;

const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;

/// CRC32 (IEEE) of `head` in base62, 6 digits, most significant first.
fn model_checksum(head: &[u8]) -> Vec<u8> {
    let crc = u64::from(crc32fast::hash(head));
    (0..CHECK_LEN as u32)
        .rev()
        .map(|power| DIGITS[((crc / 62u64.pow(power)) % 62) as usize])
        .collect()
}

/// What `parse` must answer for `text`.
fn model(text: &str) -> Result<Environment, ApiKeyFormatError> {
    let bytes = text.as_bytes();
    for environment in Environment::ALL {
        let prefix = format!("apk_{}_", environment.short_name());
        let Some(tail) = bytes.strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        if tail.len() != BODY_LEN + CHECK_LEN || !tail.iter().all(u8::is_ascii_alphanumeric) {
            return Err(ApiKeyFormatError::Shape);
        }
        let (head, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        return if model_checksum(head) == check {
            Ok(environment)
        } else {
            Err(ApiKeyFormatError::Checksum)
        };
    }
    Err(ApiKeyFormatError::Shape)
}

/// Parses `text`, checks the answer against the model and the invariants of
/// an accepted key; returns whether it was accepted.
fn check(text: &str) -> bool {
    let parsed = ApiKeySecret::parse(text);
    let expected = model(text);
    assert_eq!(
        parsed
            .as_ref()
            .map(ApiKeySecret::environment)
            .map_err(|error| *error),
        expected,
        "parse and the model disagree on {text:?}"
    );
    let Ok(key) = parsed else {
        return false;
    };
    assert_eq!(key.expose(), text, "an accepted key re-renders differently");
    assert_eq!(key.hash(), SecretHash::of(text));
    let head = format!("apk_{}_", key.environment().short_name());
    assert!(text.starts_with(&head));
    assert_eq!(
        key.prefix(),
        text[..head.len() + 6],
        "prefix shows more than 6 body characters"
    );
    let debug = format!("{key:?}");
    assert!(
        !debug.contains(&text[head.len()..]),
        "Debug shows the secret"
    );
    true
}

/// One change to a valid key.
#[derive(Arbitrary, Debug)]
enum Edit {
    Keep,
    Replace { position: u8, byte: u8 },
    Insert { position: u8, byte: u8 },
    Remove { position: u8 },
    Truncate { length: u8 },
    Append { bytes: Vec<u8> },
    SwapAdjacent { position: u8 },
}

#[derive(Arbitrary, Debug)]
struct Built {
    environment: u8,
    body: [u8; BODY_LEN],
    edit: Edit,
}

impl Built {
    fn valid_key(&self) -> String {
        let environment = Environment::ALL[usize::from(self.environment) % Environment::ALL.len()];
        let body: String = self
            .body
            .iter()
            .map(|byte| char::from(DIGITS[usize::from(*byte) % DIGITS.len()]))
            .collect();
        let head = format!("apk_{}_{body}", environment.short_name());
        let check = model_checksum(head.as_bytes());
        let mut key = head.into_bytes();
        key.extend_from_slice(&check);
        String::from_utf8(key).unwrap_or_default()
    }
}

fn run_built(built: &Built) {
    let key = built.valid_key();
    assert!(
        check(&key),
        "a key with a correct checksum was refused: {key:?}"
    );
    let original = key.as_bytes();
    let at = |position: u8| usize::from(position) % original.len();
    let mut edited = original.to_vec();
    match &built.edit {
        Edit::Keep => return,
        Edit::Replace { position, byte } => edited[at(*position)] = *byte,
        Edit::Insert { position, byte } => edited.insert(at(*position), *byte),
        Edit::Remove { position } => {
            edited.remove(at(*position));
        }
        Edit::Truncate { length } => edited.truncate(at(*length)),
        Edit::Append { bytes } => edited.extend_from_slice(bytes),
        Edit::SwapAdjacent { position } => {
            let position = at(*position);
            if position + 1 < edited.len() {
                edited.swap(position, position + 1);
            }
        }
    }
    let Ok(text) = std::str::from_utf8(&edited) else {
        return;
    };
    let accepted = check(text);
    if edited != original {
        let single_character = matches!(
            built.edit,
            Edit::Replace { .. } | Edit::Insert { .. } | Edit::Remove { .. }
        );
        let shortened = matches!(built.edit, Edit::Truncate { .. });
        let extended = matches!(&built.edit, Edit::Append { bytes } if !bytes.is_empty());
        assert!(
            !(accepted && (single_character || shortened || extended)),
            "a key changed by {:?} was accepted: {text:?}",
            built.edit
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            check(text);
        }
    } else if let Ok(built) = Built::arbitrary_take_rest(Unstructured::new(rest)) {
        run_built(&built);
    }
});
