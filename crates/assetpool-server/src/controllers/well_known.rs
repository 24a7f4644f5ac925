//! `/.well-known/jwks.json` and `/.well-known/oauth-authorization-server`.

use crate::state::AppState;
use assetpool_core::token::KeyRing;
use assetpool_wire::{
    AuthorizationServerMetadata, Jwk, JwkSet, INTROSPECT_PATH, JWKS_PATH, OAUTH_TOKEN_PATH,
};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

const PUBLIC_CACHE: &str = "public, max-age=60";

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "JSON Web Key Set", body = JwkSet)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let ring = state.service.key_ring();
    let keys = ring
        .published()
        .iter()
        .map(|(kid, public_key)| Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: KeyRing::encode_public_key(public_key),
            kid: kid.clone(),
            alg: "EdDSA".to_owned(),
            key_use: "sig".to_owned(),
        })
        .collect();
    (
        [(header::CACHE_CONTROL, PUBLIC_CACHE)],
        Json(JwkSet { keys }),
    )
}

/// RFC 8414 authorization server metadata.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "Metadata", body = AuthorizationServerMetadata)))]
pub async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let issuer = state.service.settings().issuer.clone();
    let base = issuer.trim_end_matches('/');
    let metadata = AuthorizationServerMetadata {
        token_endpoint: format!("{base}{OAUTH_TOKEN_PATH}"),
        jwks_uri: format!("{base}{JWKS_PATH}"),
        introspection_endpoint: format!("{base}{INTROSPECT_PATH}"),
        grant_types_supported: vec!["password".to_owned(), "refresh_token".to_owned()],
        response_types_supported: Vec::new(),
        token_endpoint_auth_methods_supported: vec!["none".to_owned()],
        issuer,
    };
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(metadata))
}
