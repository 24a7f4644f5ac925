//! Property tests of the API key format (`apk_<env>_<32 base62><6 base62 CRC32>`).
//!
//! Keys come from the real generator and from arbitrary 32-character base62
//! bodies whose checksum is computed here from its definition (CRC32 IEEE of
//! everything before it, 6 base62 digits, most significant first). Every such
//! key parses; every single-character substitution, truncation or extension
//! of one is refused, for the right reason; the environment named in a key is
//! the one it was made for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assetpool_core::{ApiKeyFormatError, ApiKeySecret, Environment, SecretHash};
use proptest::prelude::*;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;

/// The checksum of `head` by its definition.
fn checksum(head: &str) -> String {
    let mut value = crc32fast::hash(head.as_bytes());
    let mut digits = Vec::new();
    for _ in 0..CHECK_LEN {
        digits.push(char::from(BASE62[(value % 62) as usize]));
        value /= 62;
    }
    digits.iter().rev().collect()
}

fn key_with_body(environment: Environment, body: &str) -> String {
    let head = format!("apk_{}_{body}", environment.short_name());
    let check = checksum(&head);
    format!("{head}{check}")
}

/// Length of `apk_<env>_`, after which the base62 characters start.
fn head_len(environment: Environment) -> usize {
    "apk_".len() + environment.short_name().len() + 1
}

fn environment() -> impl Strategy<Value = Environment> {
    prop::sample::select(Environment::ALL.to_vec())
}

fn base62_char() -> impl Strategy<Value = char> {
    prop::sample::select(BASE62.to_vec()).prop_map(char::from)
}

fn body() -> impl Strategy<Value = String> {
    prop::collection::vec(base62_char(), BODY_LEN).prop_map(|chars| chars.into_iter().collect())
}

/// A valid key: from the generator or from an arbitrary body.
fn valid_key() -> impl Strategy<Value = (Environment, String)> {
    prop_oneof![
        environment().prop_map(|environment| {
            (
                environment,
                ApiKeySecret::generate(environment).expose().to_owned(),
            )
        }),
        (environment(), body()).prop_map(|(environment, body)| {
            let key = key_with_body(environment, &body);
            (environment, key)
        }),
    ]
}

/// Any character: base62, other ASCII (controls included), or any Unicode scalar.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        base62_char(),
        (0u8..=127).prop_map(char::from),
        any::<char>(),
    ]
}

/// The refusal a key with `replacement` at char `position` must get.
fn expected_refusal(
    environment: Environment,
    position: usize,
    replacement: char,
) -> ApiKeyFormatError {
    if position >= head_len(environment) && replacement.is_ascii_alphanumeric() {
        ApiKeyFormatError::Checksum
    } else {
        ApiKeyFormatError::Shape
    }
}

fn substitute(key: &str, position: usize, replacement: char) -> String {
    key.chars()
        .enumerate()
        .map(|(index, original)| {
            if index == position {
                replacement
            } else {
                original
            }
        })
        .collect()
}

fn assert_accepted(environment: Environment, key: &str) {
    let parsed = ApiKeySecret::parse(key).unwrap();
    assert_eq!(parsed.environment(), environment);
    assert_eq!(parsed.expose(), key);
    assert_eq!(parsed.hash(), SecretHash::of(key));
    assert!(key.starts_with(&parsed.prefix()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_valid_key_parses((environment, key) in valid_key()) {
        prop_assert_eq!(key.len(), head_len(environment) + BODY_LEN + CHECK_LEN);
        assert_accepted(environment, &key);
    }

    #[test]
    fn the_generator_writes_the_checksum_of_its_definition(environment in environment()) {
        let key = ApiKeySecret::generate(environment);
        let text = key.expose();
        let (head, check) = text.split_at(text.len() - CHECK_LEN);
        prop_assert_eq!(checksum(head), check);
    }

    #[test]
    fn every_single_character_substitution_is_refused(
        (environment, key) in valid_key(),
        position in any::<prop::sample::Index>(),
        replacement in any_char(),
    ) {
        let position = position.index(key.len());
        let original = key.as_bytes()[position];
        prop_assume!(replacement != char::from(original));
        let changed = substitute(&key, position, replacement);
        prop_assert_eq!(
            ApiKeySecret::parse(&changed).unwrap_err(),
            expected_refusal(environment, position, replacement)
        );
    }

    #[test]
    fn truncation_is_refused(
        (_environment, key) in valid_key(),
        length in any::<prop::sample::Index>(),
    ) {
        let length = length.index(key.len());
        prop_assert!(ApiKeySecret::parse(&key[..length]).is_err());
        prop_assert!(ApiKeySecret::parse(&key[key.len() - length..]).is_err());
    }

    #[test]
    fn extension_is_refused(
        (_environment, key) in valid_key(),
        suffix in prop::collection::vec(any_char(), 1..8),
        prefix in prop::collection::vec(any_char(), 0..4),
    ) {
        let suffix: String = suffix.into_iter().collect();
        let prefix: String = prefix.into_iter().collect();
        prop_assert_eq!(
            ApiKeySecret::parse(&format!("{key}{suffix}")).unwrap_err(),
            ApiKeyFormatError::Shape
        );
        if !prefix.is_empty() {
            prop_assert_eq!(
                ApiKeySecret::parse(&format!("{prefix}{key}")).unwrap_err(),
                ApiKeyFormatError::Shape
            );
        }
    }

    #[test]
    fn a_key_under_another_environment_name_is_refused(
        environment in environment(),
        body in body(),
        name in prop_oneof![
            Just("development".to_owned()),
            Just("staging".to_owned()),
            Just("production".to_owned()),
            Just("PROD".to_owned()),
            Just("Dev".to_owned()),
            Just("STG".to_owned()),
            Just(String::new()),
            "[a-z]{1,6}",
        ],
    ) {
        prop_assume!(Environment::from_short_name(&name).is_none());
        let head = format!("apk_{name}_{body}");
        let key = format!("{head}{}", checksum(&head));
        prop_assert_eq!(ApiKeySecret::parse(&key).unwrap_err(), ApiKeyFormatError::Shape);
        // The same body under the real short name is fine.
        assert_accepted(environment, &key_with_body(environment, &body));
    }
}

#[test]
fn environment_prefix_mapping_round_trips() {
    for environment in Environment::ALL {
        let short = environment.short_name();
        assert_eq!(Environment::from_short_name(short), Some(environment));
        assert_eq!(Environment::parse(short), Ok(environment));
        assert_eq!(Environment::parse(environment.as_str()), Ok(environment));
        assert_eq!(Environment::from_short_name(environment.as_str()), None);
        let key = ApiKeySecret::generate(environment);
        assert!(key.expose().starts_with(&format!("apk_{short}_")));
        assert_eq!(
            ApiKeySecret::parse(key.expose()).unwrap().environment(),
            environment
        );
        assert!(key.prefix().starts_with(&format!("apk_{short}_")));
    }
    let shorts: Vec<&str> = Environment::ALL
        .iter()
        .map(|environment| environment.short_name())
        .collect();
    let mut unique = shorts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        shorts.len(),
        "two environments share a short name"
    );
}

#[test]
fn every_substitution_of_one_key_by_every_ascii_and_some_unicode_is_refused() {
    let extra = [
        '\u{0}', '\u{7f}', 'é', 'ß', '\u{200b}', '\u{ff21}', '٣', '😀',
    ];
    for environment in Environment::ALL {
        let key = ApiKeySecret::generate(environment).expose().to_owned();
        for position in 0..key.len() {
            let original = char::from(key.as_bytes()[position]);
            for replacement in (0u8..=127).map(char::from).chain(extra) {
                if replacement == original {
                    continue;
                }
                let changed = substitute(&key, position, replacement);
                assert_eq!(
                    ApiKeySecret::parse(&changed).unwrap_err(),
                    expected_refusal(environment, position, replacement),
                    "{position} {replacement:?}"
                );
            }
        }
    }
}
