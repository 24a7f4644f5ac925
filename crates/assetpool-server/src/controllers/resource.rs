//! `GET /v1/resource`: the protected example resource of the seed.

use super::no_store;
use crate::error::ApiError;
use crate::extract::Authenticated;
use assetpool_core::service::EffectiveScopes;
use assetpool_wire::{Environment, ErrorCode, ErrorResponse, ResourceResponse};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::ser::SerializeSeq as _;
use serde::{Serialize, Serializer};

/// Answers who is calling: the token's user and the request's API key, and
/// the request's scopes (the token's within the key's current ones; `null`
/// when unrestricted).
#[utoipa::path(
    get, path = "/v1/resource", tag = "resource",
    security(("apiKey" = [], "apiToken" = []), ("apiKey" = [], "bearerToken" = [])),
    responses(
        (status = 200, description = "Authenticated", body = ResourceResponse),
        (status = 400, description = "Conflicting or repeated credentials", body = ErrorResponse),
        (status = 401, description = "Bad API key (api_key_disabled included) or token (token_revoked also while the key its session was opened through is disabled)", body = ErrorResponse),
        (status = 403, description = "address_not_allowed: the client address is outside the API key's allow-list", body = ErrorResponse),
        (status = 429, description = "The API key is over its rate limit or quota (rate_limited)", body = ErrorResponse),
    )
)]
pub async fn get_resource(Authenticated(verified): Authenticated) -> Result<Response, ApiError> {
    let key = &verified.key.record;
    let claims = &verified.claims;
    let body = ResourceView {
        user: UserView {
            id: &claims.sub,
            email: &claims.email,
        },
        api_key: ApiKeyView {
            id: key.id.as_str(),
            name: &key.name,
            environment: key.environment,
            application: key.application_id.as_str(),
        },
        token_expires_at: Rfc3339Seconds(
            DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
        ),
        scopes: ScopeList(verified.scopes()),
    };
    // Serialised from borrowed fields into one buffer of the right size:
    // no copy of the strings and no regrowth of the body.
    let mut buffer = Vec::with_capacity(BODY_CAPACITY);
    serde_json::to_writer(&mut buffer, &body).map_err(|error| {
        tracing::error!(%error, "cannot serialise the resource answer");
        ApiError::new(ErrorCode::InternalError)
    })?;
    Ok(no_store((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        buffer,
    )))
}

/// Room for a typical answer (about 300 bytes).
const BODY_CAPACITY: usize = 512;

/// [`ResourceResponse`] with borrowed fields: the same JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceView<'a> {
    user: UserView<'a>,
    api_key: ApiKeyView<'a>,
    token_expires_at: Rfc3339Seconds,
    scopes: ScopeList<'a>,
}

/// A time in whole seconds, serialised as chrono serialises a
/// `DateTime<Utc>` (`2030-03-17T17:46:40Z`).
///
/// Written by hand for years 0 to 9999 (other times go through chrono):
/// chrono's serialisation formats through `Display` and serde's `collect_str`,
/// a character at a time, which cost about 2,000 instructions per answer on
/// the verify path; these twenty bytes cost about a hundred.
struct Rfc3339Seconds(DateTime<Utc>);

impl Serialize for Rfc3339Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use chrono::{Datelike as _, Timelike as _};
        let time = self.0;
        let year = time.year();
        if !(0..=9999).contains(&year) || time.nanosecond() != 0 {
            return time.serialize(serializer);
        }
        let mut text = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, value: u32| {
            let mut value = value;
            for index in (at..at + width).rev() {
                // A digit: `value % 10` is below 10.
                text[index] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year.unsigned_abs());
        put(5, 2, time.month());
        put(8, 2, time.day());
        put(11, 2, time.hour());
        put(14, 2, time.minute());
        put(17, 2, time.second());
        // Only ASCII digits and separators were written.
        serializer.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// The request's scopes as the JSON list of [`ResourceResponse::scopes`]
/// (`null` when unrestricted), written from the sets themselves.
struct ScopeList<'a>(EffectiveScopes<'a>);

impl Serialize for ScopeList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.0.is_restricted() {
            return serializer.serialize_none();
        }
        let mut list = serializer.serialize_seq(None)?;
        for scope in self.0.iter() {
            list.serialize_element(scope.as_str())?;
        }
        list.end()
    }
}

/// [`assetpool_wire::UserIdentity`] with borrowed fields.
#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    email: &'a str,
}

/// [`assetpool_wire::ApiKeyIdentity`] with borrowed fields.
#[derive(Serialize)]
struct ApiKeyView<'a> {
    id: &'a str,
    name: &'a str,
    environment: Environment,
    application: &'a str,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use assetpool_wire::{ApiKeyIdentity, ScopeSet, UserIdentity};

    #[test]
    fn the_borrowed_view_serialises_as_the_wire_type() {
        let at = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let wire = ResourceResponse {
            user: UserIdentity {
                id: "usr_1".into(),
                email: "a@example.test".into(),
            },
            api_key: ApiKeyIdentity {
                id: "key_1".into(),
                name: "name with \"quotes\"".into(),
                environment: Environment::Staging,
                application: "app_1".into(),
            },
            token_expires_at: at,
            scopes: Some(vec!["a".into(), "c".into()]),
        };
        let token = ScopeSet::parse("a b c").unwrap();
        let key = ScopeSet::parse("a c d").unwrap();
        let view = ResourceView {
            user: UserView {
                id: "usr_1",
                email: "a@example.test",
            },
            api_key: ApiKeyView {
                id: "key_1",
                name: "name with \"quotes\"",
                environment: Environment::Staging,
                application: "app_1",
            },
            token_expires_at: Rfc3339Seconds(at),
            scopes: ScopeList(EffectiveScopes::of(Some(&token), Some(&key))),
        };
        assert_eq!(
            serde_json::to_string(&view).unwrap(),
            serde_json::to_string(&wire).unwrap()
        );
        let unrestricted = serde_json::to_value(ScopeList(EffectiveScopes::Unrestricted)).unwrap();
        assert!(unrestricted.is_null());
    }

    #[test]
    fn times_serialise_as_chrono_serialises_them() {
        let times = [
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
            DateTime::from_timestamp(951_827_696, 0).unwrap(), // 2000-02-29T12:34:56Z
            DateTime::from_timestamp(253_402_300_799, 0).unwrap(), // 9999-12-31T23:59:59Z
            DateTime::from_timestamp(253_402_300_800, 0).unwrap(), // year 10000
            DateTime::from_timestamp(-62_167_219_200, 0).unwrap(), // 0000-01-01
            DateTime::from_timestamp(-62_167_219_201, 0).unwrap(), // year -1
            DateTime::from_timestamp(1_900_000_000, 5).unwrap(),
            DateTime::<Utc>::default(),
        ];
        for time in times {
            assert_eq!(
                serde_json::to_string(&Rfc3339Seconds(time)).unwrap(),
                serde_json::to_string(&time).unwrap(),
                "{time:?}"
            );
        }
    }
}
