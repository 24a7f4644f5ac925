//! The OpenAPI 3 document. Its operations come from the routes themselves
//! ([`crate::router`] adds each handler with its `#[utoipa::path]`, which
//! holds the route's path, method and description); this module gives the
//! rest (title, description, the schemas every refusal uses, the security
//! schemes, the schemas of the form bodies) and serves the finished document,
//! serialised once when the router is built.
//!
//! The document is also committed as `docs/openapi.json`; a test of the
//! `api` suite fails when the two differ (`ASSETPOOL_UPDATE_OPENAPI=1 cargo
//! test -p assetpool-server --test api openapi` rewrites the file).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::BTreeMap;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The document's frame: everything but the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "assetpool",
        description = "Authentication for HTTP APIs: an API key (x-api-key) on every request plus a short-lived bearer token (x-api-token or Authorization: Bearer) obtained by the OAuth 2.0 password grant."
    ),
    components(schemas(assetpool_wire::ErrorCode, assetpool_wire::Environment))
)]
pub struct ApiDoc;

/// The form body of `POST /oauth/token` (RFC 6749 sections 4.3.2 and 6),
/// `application/x-www-form-urlencoded`. Documentation only: the handler reads
/// the form itself, field by field, for the grant it names.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OAuthTokenForm {
    /// `password` or `refresh_token`; anything else is `unsupported_grant_type`.
    #[schema(example = "password")]
    grant_type: String,
    /// The user's email (the password grant).
    username: Option<String>,
    /// The user's password (the password grant).
    #[schema(format = Password)]
    password: Option<String>,
    /// The refresh token to spend (the refresh_token grant).
    #[schema(format = Password)]
    refresh_token: Option<String>,
    /// Scopes asked for, space-separated (RFC 6749 section 3.3); a refresh may only narrow the session's.
    scope: Option<String>,
    /// Ignored: a stock OAuth client may send it.
    client_id: Option<String>,
}

/// The form body of `POST /oauth/introspect` (RFC 7662 section 2.1),
/// `application/x-www-form-urlencoded`. Documentation only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntrospectionForm {
    /// The access token to look at.
    #[schema(format = Password)]
    token: String,
    /// A hint (`access_token`); the server needs none.
    token_type_hint: Option<String>,
}

/// The body of `GET /healthz` (`ok`), of a ready `GET /readyz` (`ready`),
/// and of `GET /readyz` while the server shuts down (`draining`, with 503).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HealthStatus {
    /// `ok`, `ready` or `draining`.
    #[schema(example = "ok")]
    status: String,
    /// `up` or `down`: whether the limits store (`--limits-store`) answers;
    /// only on `/readyz`, only with a limits store (ready either way).
    #[serde(rename = "limitsStore")]
    limits_store: Option<String>,
}

/// The body of a 503 from `GET /readyz`: the error body when storage does not
/// answer, `{"status": "draining"}` once the server is shutting down.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum NotReady {
    /// Storage does not answer (`storage_unavailable`).
    Unavailable(assetpool_wire::ErrorResponse),
    /// SIGTERM was received: the server is draining (`--shutdown-delay`).
    Draining(HealthStatus),
}

/// The credentials of protected routes, named by their `security`: the API key
/// (`apiKey`) and the access token, sent as `x-api-token` (`apiToken`) or as
/// `Authorization: Bearer` (`bearerToken`).
#[derive(Debug, Clone, Copy)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                assetpool_wire::API_KEY_HEADER,
                "An API key of this server's environment",
            ))),
        );
        components.add_security_scheme(
            "apiToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                assetpool_wire::API_TOKEN_HEADER,
                "An access token from a login (or use Authorization: Bearer)",
            ))),
        );
        components.add_security_scheme(
            "bearerToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from a login (or use x-api-token); the admin API needs an admin user's",
                    ))
                    .build(),
            ),
        );
    }
}

/// `ErrorCode` as an open string: the known codes are listed in its
/// description and `examples`, but a generated client must accept a code a
/// newer server adds (a closed `enum` would fail to decode it).
#[derive(Debug, Clone, Copy)]
struct OpenErrorCodes;

impl Modify for OpenErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(closed))) = components.schemas.get("ErrorCode") else {
            return;
        };
        let known: Vec<String> = closed
            .enum_values
            .iter()
            .flatten()
            .filter_map(|value| value.as_str().map(str::to_owned))
            .collect();
        let description = format!(
            "A stable error code. Known codes: {}. Servers may add codes: treat an unknown one by its HTTP status.",
            known.join(", ")
        );
        let open = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .examples(known)
            .build();
        components
            .schemas
            .insert("ErrorCode".to_owned(), RefOr::T(Schema::Object(open)));
    }
}

/// One `#[utoipa::path]` with several methods gives each the same
/// `operationId`; generators want them unique, so every repeat but the first
/// (in method order) gets its method appended (`verify_forwarded_post`).
#[derive(Debug, Clone, Copy)]
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = BTreeMap::<String, usize>::new();
        for item in openapi.paths.paths.values_mut() {
            let methods: [(&str, &mut Option<Operation>); 8] = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("trace", &mut item.trace),
            ];
            for (method, operation) in methods {
                let Some(operation) = operation else { continue };
                let Some(id) = operation.operation_id.clone() else {
                    continue;
                };
                let count = seen.entry(id.clone()).or_default();
                if *count > 0 {
                    operation.operation_id = Some(format!("{id}_{method}"));
                }
                *count += 1;
            }
        }
    }
}

/// The finished document as JSON (cheap to clone).
#[derive(Debug, Clone)]
pub struct OpenApiJson(Bytes);

/// Serves this document.
#[utoipa::path(get, path = "/openapi.json", tag = "discovery",
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json")))]
pub async fn openapi_json(State(document): State<OpenApiJson>) -> Response {
    let content_type = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (content_type, document.0).into_response()
}

/// The routes of `documented`, plus `GET /openapi.json` answering their
/// document (with `/openapi.json` in it), serialised here once.
pub fn with_document<S>(documented: OpenApiRouter<S>) -> serde_json::Result<Router<S>>
where
    S: Clone + Send + Sync + 'static,
{
    let (routes, mut document) = documented.split_for_parts();
    let (serve, own_entry) = OpenApiRouter::<OpenApiJson>::default()
        .routes(routes!(openapi_json))
        .split_for_parts();
    document.merge(own_entry);
    // After every route's operations and schemas are in: a route's schemas
    // would bring back the closed `ErrorCode` enum.
    for modifier in [
        &SecuritySchemes as &dyn Modify,
        &OpenErrorCodes,
        &UniqueOperationIds,
    ] {
        modifier.modify(&mut document);
    }
    let json = OpenApiJson(Bytes::from(serde_json::to_vec(&document)?));
    Ok(routes.merge(serve.with_state(json)))
}
