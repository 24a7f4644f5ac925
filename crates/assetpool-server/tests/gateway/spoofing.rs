//! Identity and credential headers in other spellings (`X_Assetpool_User_Id`,
//! `x-assetpool_user-id`, `X_API_KEY`): many upstream stacks read headers
//! CGI-style, where `_` and `-` and case do not differ, so such a header would
//! pass for the real one. The reverse proxy drops them all; `/auth/verify`
//! reads credentials and writes identity under the canonical names only.

use crate::helpers::Backend;
use crate::scenarios::{
    assert_no_spoofed_spelling, logged_in, names_a_gateway_header, start_upstream,
    SPOOFED_SPELLINGS,
};
use crate::tunnels::proxy_before;
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[tokio::test]
async fn other_spellings_never_reach_the_upstream_through_the_proxy() {
    let app = proxy_before(Backend::Sqlite, start_upstream().await, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let who: Value = app.resource(&key.key, &token).await.json().await.unwrap();
    let mut request = app
        .client
        .get(app.url("/v2/me"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .header("x_custom_underscored", "kept");
    for (name, value) in SPOOFED_SPELLINGS {
        request = request.header(name, value);
    }
    let echo: Value = request.send().await.unwrap().json().await.unwrap();
    let headers = &echo["headers"];
    assert_no_spoofed_spelling(headers);
    assert_eq!(headers["x-assetpool-user-id"][0], who["user"]["id"]);
    assert_eq!(headers["x-assetpool-user-id"].as_array().unwrap().len(), 1);
    // Headers that name nothing of the gateway's pass, underscores and all.
    assert_eq!(headers["x_custom_underscored"][0], "kept");

    // The same on a WebSocket handshake.
    let address = app.address.trim_start_matches("http://");
    let mut handshake = format!("ws://{address}/ws").into_client_request().unwrap();
    let request_headers = handshake.headers_mut();
    request_headers.insert("x-api-key", key.key.parse().unwrap());
    request_headers.insert("x-api-token", token.parse().unwrap());
    for (name, value) in SPOOFED_SPELLINGS {
        request_headers.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(handshake, stream)
        .await
        .unwrap();
    let greeting = socket.next().await.unwrap().unwrap().into_text().unwrap();
    let greeting: Value = serde_json::from_str(&greeting).unwrap();
    assert_no_spoofed_spelling(&greeting["headers"]);
    assert_eq!(
        greeting["headers"]["x-assetpool-user-id"][0],
        who["user"]["id"]
    );
}

#[tokio::test]
async fn forward_auth_reads_and_writes_canonical_names_only() {
    let app = proxy_before(Backend::Sqlite, start_upstream().await, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let who: Value = app.resource(&key.key, &token).await.json().await.unwrap();
    let mut request = app
        .client
        .get(app.url("/auth/verify"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token);
    for (name, value) in SPOOFED_SPELLINGS {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let identity: Vec<_> = response
        .headers()
        .iter()
        .filter(|(name, _)| names_a_gateway_header(name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect();
    let mut names: Vec<&str> = identity.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "x-assetpool-application",
            "x-assetpool-environment",
            "x-assetpool-key-id",
            "x-assetpool-user-email",
            "x-assetpool-user-id",
        ],
        "{identity:?}"
    );
    let value = |name: &str| {
        identity
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(value("x-assetpool-user-id"), who["user"]["id"].as_str());
    assert_eq!(value("x-assetpool-environment"), Some("production"));

    // Credentials count only under their own names.
    let response = app
        .client
        .get(app.url("/auth/verify"))
        .header("X_API_KEY", &key.key)
        .header("x_api_token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "missing_api_key");
}
