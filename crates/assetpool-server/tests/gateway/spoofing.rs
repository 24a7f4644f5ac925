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

/// Reads one CRLF-terminated line.
async fn read_line(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.push(stream.read_u8().await.unwrap());
        assert!(line.len() < 64 * 1024, "line too long");
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// An upstream that reads one request whole, chunked body and trailer
/// fields included, and answers with all of it as text.
async fn start_capturing_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut seen = String::new();
            loop {
                let line = read_line(&mut stream).await;
                let end = line.is_empty();
                seen.push_str(&line);
                seen.push('\n');
                if end {
                    break;
                }
            }
            assert!(
                seen.to_ascii_lowercase()
                    .contains("transfer-encoding: chunked"),
                "{seen}"
            );
            loop {
                let size_line = read_line(&mut stream).await;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
                if size == 0 {
                    // Trailer fields, up to an empty line.
                    loop {
                        let line = read_line(&mut stream).await;
                        if line.is_empty() {
                            break;
                        }
                        seen.push_str(&line);
                        seen.push('\n');
                    }
                    break;
                }
                let mut chunk = vec![0_u8; size + 2];
                stream.read_exact(&mut chunk).await.unwrap();
                seen.push_str(&String::from_utf8_lossy(&chunk[..size]));
                seen.push('\n');
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{seen}",
                seen.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    address
}

#[tokio::test]
async fn trailer_fields_of_a_request_never_reach_the_upstream() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = proxy_before(Backend::Sqlite, start_capturing_upstream().await, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v2/upload HTTP/1.1\r\nhost: {address}\r\nx-api-key: {}\r\nx-api-token: {token}\r\n\
         connection: close\r\ntransfer-encoding: chunked\r\nte: trailers\r\n\
         trailer: x-assetpool-user-id, x_assetpool_user_id, x-api-key, x-custom\r\n\r\n\
         5\r\nhello\r\n0\r\nx-assetpool-user-id: usr_victim\r\nX_Assetpool_User_Id: usr_victim\r\n\
         x-api-key: apk_prod_spoofed\r\nx-custom: spoofed\r\n\r\n",
        key.key
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("hello"),
        "the body did not arrive: {answer}"
    );
    assert!(
        !answer.contains("victim") && !answer.contains("spoofed"),
        "a trailer field reached the upstream: {answer}"
    );
}
