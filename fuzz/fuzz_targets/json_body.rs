//! Fuzzes `parse_strict_json`, the code behind the server's `StrictJson`
//! extractor, with the real request types.
//!
//! The first input byte picks the type: `LoginRequest`
//! (`/api/authentication/login`), `RefreshRequest`
//! (`/api/authentication/refresh`), or any JSON value; the rest is the body.
//! The answer is compared with an independent model: a body over 16 KiB is
//! `payload_too_large`; otherwise it is accepted exactly when it is one JSON
//! document, an object at the top, with no key twice in any object at any
//! depth, no control character (U+0000 to U+001F, U+007F to U+009F) in any
//! string or key, and deserialises as the type, and then to the same value as plain
//! `serde_json` gives; every other refusal is `invalid_request`.
#![no_main]

use assetpool_server::extract::{parse_strict_json, MAX_BODY_BYTES};
use assetpool_wire::{ErrorCode, LoginRequest, RefreshRequest};
use libfuzzer_sys::fuzz_target;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

fn is_control(character: char) -> bool {
    character <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&character)
}

/// A JSON document that keeps every member of every object, repeated or not.
enum Tree {
    Scalar,
    Text(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    fn has_control(&self) -> bool {
        match self {
            Tree::Scalar => false,
            Tree::Text(text) => text.chars().any(is_control),
            Tree::Array(items) => items.iter().any(Tree::has_control),
            Tree::Object(members) => members
                .iter()
                .any(|(name, value)| name.chars().any(is_control) || value.has_control()),
        }
    }

    fn has_repeated_key(&self) -> bool {
        match self {
            Tree::Scalar | Tree::Text(_) => false,
            Tree::Array(items) => items.iter().any(Tree::has_repeated_key),
            Tree::Object(members) => {
                let mut names = HashSet::new();
                members.iter().any(|(name, _)| !names.insert(name.as_str()))
                    || members.iter().any(|(_, value)| value.has_repeated_key())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_str<E>(self, text: &str) -> Result<Tree, E> {
        Ok(Tree::Text(text.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Tree>()? {
            members.push(member);
        }
        Ok(Tree::Object(members))
    }
}

fn check<T: DeserializeOwned + Serialize>(body: &[u8]) {
    let result = parse_strict_json::<T>(body);
    if body.len() > MAX_BODY_BYTES {
        let code = result.as_ref().err().map(|error| error.code());
        assert_eq!(
            code,
            Some(ErrorCode::PayloadTooLarge),
            "an oversized body was not refused"
        );
        return;
    }
    let acceptable = match serde_json::from_slice::<Tree>(body) {
        Ok(tree @ Tree::Object(_)) => !tree.has_repeated_key() && !tree.has_control(),
        _ => false,
    };
    let plain = serde_json::from_slice::<T>(body).ok();
    match (result, plain) {
        (Ok(parsed), Some(plain)) if acceptable => {
            let parsed = serde_json::to_value(parsed).ok();
            let plain = serde_json::to_value(plain).ok();
            assert_eq!(parsed, plain, "the strict parse differs from serde_json");
        }
        (Ok(_), _) => panic!(
            "a body was accepted that is not one object without repeated keys of the type: {:?}",
            String::from_utf8_lossy(body)
        ),
        (Err(error), plain) => {
            assert!(
                !(acceptable && plain.is_some()),
                "a valid body was refused: {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(error.code(), ErrorCode::InvalidRequest);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check::<LoginRequest>(body),
        1 => check::<RefreshRequest>(body),
        _ => check::<Value>(body),
    }
});
