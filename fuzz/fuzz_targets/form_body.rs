//! Fuzzes `parse_strict_form`, the code behind the server's `StrictForm`
//! extractor (`/oauth/token`, `/oauth/introspect`).
//!
//! The input is the body. The answer is compared with an independent decoder
//! written from the WHATWG `application/x-www-form-urlencoded` parser: split
//! on `&`, drop empty sequences, split each at the first `=`, `+` to space,
//! `%XX` to its byte, other `%` kept, then UTF-8 with U+FFFD for bad bytes. A
//! body over 16 KiB is `payload_too_large`; a body with a parameter name
//! twice, or a decoded name or value holding a control character (U+0000 to
//! U+001F, U+007F to U+009F), is `invalid_request`; any other body is
//! accepted as exactly the decoded parameters.
#![no_main]

use assetpool_server::extract::{parse_strict_form, MAX_BODY_BYTES};
use assetpool_wire::ErrorCode;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'+' {
            out.push(b' ');
        } else if byte == b'%' {
            let high = bytes.get(index + 1).copied().and_then(hex);
            let low = bytes.get(index + 2).copied().and_then(hex);
            if let (Some(high), Some(low)) = (high, low) {
                out.push(high * 16 + low);
                index += 3;
                continue;
            }
            out.push(b'%');
        } else {
            out.push(byte);
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_control(character: char) -> bool {
    character <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&character)
}

fn model(body: &[u8]) -> Vec<(String, String)> {
    body.split(|byte| *byte == b'&')
        .filter(|sequence| !sequence.is_empty())
        .map(
            |sequence| match sequence.iter().position(|byte| *byte == b'=') {
                Some(at) => (decode(&sequence[..at]), decode(&sequence[at + 1..])),
                None => (decode(sequence), String::new()),
            },
        )
        .collect()
}

fuzz_target!(|body: &[u8]| {
    let result = parse_strict_form(body);
    if body.len() > MAX_BODY_BYTES {
        let code = result.as_ref().err().map(|error| error.code());
        assert_eq!(
            code,
            Some(ErrorCode::PayloadTooLarge),
            "an oversized body was not refused"
        );
        return;
    }
    let pairs = model(body);
    let mut expected = HashMap::new();
    let mut repeated = false;
    let mut control = false;
    for (name, value) in pairs {
        control |= name.chars().chain(value.chars()).any(is_control);
        repeated |= expected.insert(name, value).is_some();
    }
    match result {
        Ok(fields) => {
            assert!(
                !repeated && !control,
                "a repeated parameter or a control character was accepted: {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(fields, expected, "the form decodes differently");
        }
        Err(error) => {
            assert!(
                repeated || control,
                "a form without a repeated parameter or a control character was refused: {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(error.code(), ErrorCode::InvalidRequest);
        }
    }
});
