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
        token_expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
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
    token_expires_at: DateTime<Utc>,
    scopes: ScopeList<'a>,
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
            token_expires_at: at,
            scopes: ScopeList(EffectiveScopes::of(Some(&token), Some(&key))),
        };
        assert_eq!(
            serde_json::to_string(&view).unwrap(),
            serde_json::to_string(&wire).unwrap()
        );
        let unrestricted = serde_json::to_value(ScopeList(EffectiveScopes::Unrestricted)).unwrap();
        assert!(unrestricted.is_null());
    }
}
