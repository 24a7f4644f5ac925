//! Scopes in the SDKs against the real server: `assetpool-client` asks for
//! scopes at login and tells what was granted; `assetpool-verify` reads a
//! token's scopes, requires scopes of every request (`require_scope`) or of
//! one handler (`Scoped<R>`), in a real axum backend on a real socket,
//! refusing with 403 `insufficient_scope` as the server does.

use crate::helpers::{Server, EMAIL, PASSWORD};
use assetpool_client::{Client, Credentials, ErrorCode};
use assetpool_core::admin::CreateApiKey;
use assetpool_core::{Environment, ScopeSet};
use assetpool_verify::{ScopeRequirement, Scoped, Verifier, VerifyError, VerifyLayer};
use axum::routing::get;
use axum::Router;
use std::time::Duration;

async fn scoped_key(server: &Server, scopes: &str) -> String {
    server
        .admin
        .create_api_key(CreateApiKey {
            name: "scoped".to_owned(),
            environment: Environment::Production,
            application_id: None,
            expires_in: None,
            limits: Default::default(),
            metadata: None,
            owner: None,
            allowed_networks: None,
            scopes: Some(ScopeSet::parse(scopes).unwrap()),
        })
        .await
        .unwrap()
        .secret
        .expose()
        .to_owned()
}

fn client(server: &Server, key: &str, scope: Option<&str>) -> Client {
    let builder = Client::builder(&server.address, key, Credentials::new(EMAIL, PASSWORD));
    match scope {
        Some(scope) => builder.scope(scope),
        None => builder,
    }
    .build()
    .unwrap()
}

fn verifier(server: &Server) -> Verifier {
    Verifier::builder(&server.address, Environment::Production)
        .build()
        .unwrap()
}

struct OrdersRead;
impl ScopeRequirement for OrdersRead {
    const SCOPES: &'static [&'static str] = &["orders:read"];
}

struct OrdersWrite;
impl ScopeRequirement for OrdersWrite {
    const SCOPES: &'static [&'static str] = &["orders:read", "orders:write"];
}

struct Misspelt;
impl ScopeRequirement for Misspelt {
    const SCOPES: &'static [&'static str] = &["Orders:Read"];
}

async fn list_orders(caller: Scoped<OrdersRead>) -> String {
    format!("orders of {}", caller.email)
}

async fn create_order(caller: Scoped<OrdersWrite>) -> String {
    format!("created by {}", caller.into_claims().sub)
}

async fn misspelt(_caller: Scoped<Misspelt>) -> &'static str {
    "never"
}

/// Serves `router` on 127.0.0.1:0; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// (status, WWW-Authenticate, body) of `method path` with `token`.
async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, response.text().await.unwrap())
}

#[tokio::test]
async fn the_client_asks_for_scopes_and_tells_what_was_granted() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let key = scoped_key(&server, "orders:read orders:write").await;
    let narrow = client(&server, &key, Some("orders:read"));
    assert_eq!(
        narrow.granted_scope().await.unwrap().as_deref(),
        Some("orders:read")
    );
    let claims = verifier(&server)
        .verify(&narrow.access_token().await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        claims.scopes(),
        Some(&ScopeSet::parse("orders:read").unwrap())
    );
    assert!(claims.has_scope("orders:read") && !claims.has_scope("orders:write"));

    let whole = client(&server, &key, None);
    assert_eq!(
        whole.granted_scope().await.unwrap().as_deref(),
        Some("orders:read orders:write")
    );
    let unrestricted = server.client();
    assert_eq!(unrestricted.granted_scope().await.unwrap(), None);
    let claims = verifier(&server)
        .verify(&unrestricted.access_token().await.unwrap())
        .await
        .unwrap();
    assert_eq!(claims.scopes(), None);
    assert!(claims.has_scope("anything"));

    let too_much = client(&server, &key, Some("admin"));
    let error = too_much.granted_scope().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidScope), "{error:?}");
}

#[tokio::test]
async fn a_backend_states_the_scopes_each_handler_needs() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let key = scoped_key(&server, "orders:read orders:write").await;
    let reader = client(&server, &key, Some("orders:read"))
        .access_token()
        .await
        .unwrap();
    let writer = client(&server, &key, None).access_token().await.unwrap();
    let unrestricted = server.client().access_token().await.unwrap();
    let base = serve(
        Router::new()
            .route("/orders", get(list_orders).post(create_order))
            .route("/misspelt", get(misspelt))
            .layer(VerifyLayer::new(verifier(&server))),
    )
    .await;

    let (status, _, body) = call(&base, reqwest::Method::GET, "/orders", &reader).await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!("orders of {EMAIL}").as_str())
    );
    let (status, challenge, body) = call(&base, reqwest::Method::POST, "/orders", &reader).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        challenge,
        r#"Bearer realm="assetpool", error="insufficient_scope", scope="orders:read orders:write""#
    );
    assert!(body.contains(r#""error":"insufficient_scope""#), "{body}");
    for token in [&writer, &unrestricted] {
        let (status, _, body) = call(&base, reqwest::Method::POST, "/orders", token).await;
        assert_eq!(status, 200, "{body}");
    }
    // A malformed requirement is met by no restricted token.
    let (status, challenge, _) = call(&base, reqwest::Method::GET, "/misspelt", &writer).await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        r#"Bearer realm="assetpool", error="insufficient_scope""#
    );
    // Without a token: 401 as before.
    let response = reqwest::get(format!("{base}/orders")).await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_layer_requires_scopes_of_every_request() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let key = scoped_key(&server, "orders:read orders:write reports").await;
    let reports = client(&server, &key, Some("reports"))
        .access_token()
        .await
        .unwrap();
    let orders = client(&server, &key, Some("orders:read orders:write"))
        .access_token()
        .await
        .unwrap();
    let layer = VerifyLayer::new(verifier(&server))
        .require_scope("orders:read")
        .unwrap()
        .require_scope("orders:write")
        .unwrap();
    assert!(VerifyLayer::new(verifier(&server))
        .require_scope("Bad")
        .is_err());
    let base = serve(
        Router::new()
            .route("/anything", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let (status, _, body) = call(&base, reqwest::Method::GET, "/anything", &orders).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, challenge, body) = call(&base, reqwest::Method::GET, "/anything", &reports).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        challenge,
        r#"Bearer realm="assetpool", error="insufficient_scope", scope="orders:read orders:write""#
    );
    assert_eq!(
        VerifyError::InsufficientScope {
            required: ScopeSet::parse("a").unwrap()
        }
        .code(),
        ErrorCode::InsufficientScope
    );
}
