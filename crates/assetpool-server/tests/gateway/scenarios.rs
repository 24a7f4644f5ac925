//! The scenarios every gateway mode must pass, run against a front URL
//! (nginx with `auth_request`, or assetpool in reverse-proxy mode) before an
//! upstream started by the test.

use crate::helpers::{TestApp, TestKey, PASSWORD};
use crate::upstream;
use assetpool_core::Environment;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// The test's upstream on 127.0.0.1:0.
pub async fn start_upstream() -> SocketAddr {
    start_upstream_counting().await.0
}

/// The test's upstream on 127.0.0.1:0, and its count of open WebSockets.
pub async fn start_upstream_counting() -> (SocketAddr, upstream::OpenSockets) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let open = upstream::OpenSockets::default();
    let router = upstream::router_counting(open.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (address, open)
}

/// Client-sent headers that name an identity or credential header in another
/// spelling: upstreams that read headers CGI-style (`HTTP_X_ASSETPOOL_USER_ID`)
/// ignore case and read `_`, `.` and the like as `-`.
pub const SPOOFED_SPELLINGS: [(&str, &str); 10] = [
    ("X_Assetpool_User_Id", "usr_victim"),
    ("x-assetpool_user-id", "usr_victim"),
    ("X.Assetpool.User.Id", "usr_victim"),
    ("x~api~token", "spoofed.token"),
    ("x_assetpool_user_email", "victim@example.com"),
    ("X_ASSETPOOL_ENVIRONMENT", "development"),
    ("x_assetpool_key-id", "key_victim"),
    ("X_API_KEY", "apk_prod_spoofed"),
    ("x_api-token", "spoofed.token"),
    ("X_Forwarded_For", "198.51.100.66"),
];

/// Whether `name`, lower-cased with anything but letters and digits read as
/// `-`, is an identity, credential or forwarding header that the gateway
/// alone may set.
pub fn names_a_gateway_header(name: &str) -> bool {
    let normalised: String = name
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() {
                character.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    normalised.starts_with("x-assetpool-")
        || [
            "x-api-key",
            "x-api-token",
            "authorization",
            "x-forwarded-for",
        ]
        .contains(&normalised.as_str())
}

/// Asserts that the headers an upstream received (`name: [values]`) hold no
/// other spelling of a gateway header than the canonical one.
pub fn assert_no_spoofed_spelling(headers: &Value) {
    for name in headers.as_object().unwrap().keys() {
        if names_a_gateway_header(name) {
            assert!(
                name.bytes()
                    .all(|byte| byte == b'-' || byte.is_ascii_lowercase() || byte.is_ascii_digit()),
                "{name} reached the upstream: {headers}"
            );
        }
    }
    assert!(
        !headers.to_string().contains("victim") && !headers.to_string().contains("spoofed"),
        "a spoofed value reached the upstream: {headers}"
    );
}

/// An address on which nothing listens.
pub fn dead_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A user logged in with a fresh production key: (key, access token).
pub async fn logged_in(app: &TestApp) -> (TestKey, String) {
    let key = app.create_key(Environment::Production).await;
    // The user may exist already (one app serves several scenarios).
    let _ = app
        .admin
        .create_user("alice@example.com", SecretString::from(PASSWORD), false)
        .await;
    let token = login(app, &key).await;
    (key, token)
}

async fn login(app: &TestApp, key: &TestKey) -> String {
    let body: Value = app
        .login(&key.key, "alice@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

/// An accepted request reaches the upstream with method, path, query, body and
/// the client's own headers, plus the identity headers, without credentials
/// and without the identity headers the client made up.
pub async fn accepted_request_reaches_upstream(app: &TestApp, front: &str) {
    let (key, token) = logged_in(app).await;
    let who: Value = app.resource(&key.key, &token).await.json().await.unwrap();
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{front}/v2/things?page=2&sort=name"))
        .header("x-api-key", &key.key)
        .header("authorization", format!("Bearer {token}"))
        .header("x-assetpool-user-id", "usr_spoofed")
        .header("x-assetpool-environment", "development")
        .header("x-assetpool-key-id", "key_spoofed")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "203.0.113.7");
    for (name, value) in SPOOFED_SPELLINGS {
        request = request.header(name, value);
    }
    let response = request
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The upstream's own Cache-Control, not assetpool's default.
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/v2/things");
    assert_eq!(echo["query"], "page=2&sort=name");
    assert_eq!(echo["bodyLength"], 17);
    let headers = &echo["headers"];
    let single = |name: &str| -> Value {
        let values = headers[name]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing in {headers}"));
        assert_eq!(values.len(), 1, "{name} appears once: {headers}");
        values[0].clone()
    };
    assert_eq!(single("x-assetpool-user-id"), who["user"]["id"]);
    assert_eq!(single("x-assetpool-user-email"), "alice@example.com");
    assert_eq!(single("x-assetpool-application"), key.application.as_str());
    assert_eq!(single("x-assetpool-key-id"), key.id.as_str());
    assert_eq!(single("x-assetpool-environment"), "production");
    assert_eq!(single("x-custom"), "kept");
    assert_no_spoofed_spelling(headers);
    let forwarded_for = single("x-forwarded-for");
    assert!(
        forwarded_for.as_str().unwrap().starts_with("203.0.113.7, "),
        "{forwarded_for}"
    );
    for credential in ["x-api-key", "x-api-token", "authorization"] {
        assert!(
            headers.get(credential).is_none(),
            "{credential} reached the upstream"
        );
    }
    let text = echo.to_string();
    assert!(
        !text.contains(&key.key) && !text.contains(&token),
        "a secret reached the upstream"
    );
}

async fn assert_refusal(
    response: reqwest::Response,
    status: u16,
    code: &str,
    challenge: Option<&str>,
) {
    assert_eq!(response.status(), status, "{code}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{code}");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap().to_owned())
            .as_deref(),
        challenge,
        "{code}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code);
    assert!(body["message"].is_string());
}

/// Every refusal reaches the client with the contract's status, body and challenge.
pub async fn refusals_reach_the_client(app: &TestApp, front: &str) {
    let (key, token) = logged_in(app).await;
    let client = reqwest::Client::new();
    let get = || client.get(format!("{front}/v2/things?x=1"));
    let invalid = r#"Bearer realm="assetpool", error="invalid_token""#;
    let send = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap() };

    let response = send(get().header("x-api-token", &token)).await;
    assert_refusal(response, 401, "missing_api_key", None).await;
    let response = send(
        get()
            .header("x-api-key", "apk_prod_nonsense")
            .header("x-api-token", &token),
    )
    .await;
    assert_refusal(response, 401, "invalid_api_key", None).await;
    let response = send(get().header("x-api-key", &key.key)).await;
    assert_refusal(
        response,
        401,
        "missing_token",
        Some(r#"Bearer realm="assetpool""#),
    )
    .await;
    let response = send(
        get()
            .header("x-api-key", &key.key)
            .header("x-api-token", "not.a.token"),
    )
    .await;
    assert_refusal(response, 401, "invalid_token", Some(invalid)).await;
    let conflicting = get()
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .header("authorization", "Bearer another");
    assert_refusal(send(conflicting).await, 400, "invalid_request", None).await;
    // A POST with a body is refused the same way.
    let post = client
        .post(format!("{front}/v2/things"))
        .header("x-api-key", &key.key)
        .body(vec![b'x'; 100_000]);
    assert_refusal(
        send(post).await,
        401,
        "missing_token",
        Some(r#"Bearer realm="assetpool""#),
    )
    .await;

    revoked_and_expired(app, front, &key, &token).await;
}

/// Revoked tokens and keys, and expired tokens, refused through the front.
async fn revoked_and_expired(app: &TestApp, front: &str, key: &TestKey, token: &str) {
    let client = reqwest::Client::new();
    let get = || client.get(format!("{front}/v2/things"));
    let invalid = r#"Bearer realm="assetpool", error="invalid_token""#;
    let send = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap() };
    // Revoked: a second session, logged out.
    let other = login(app, key).await;
    let logout = app
        .client
        .post(app.url("/api/authentication/logout"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let response = send(
        get()
            .header("x-api-key", &key.key)
            .header("x-api-token", &other),
    )
    .await;
    assert_refusal(response, 401, "token_revoked", Some(invalid)).await;
    // Revoked key.
    let revoked = app.create_key(Environment::Production).await;
    let revoked_token = login(app, &revoked).await;
    app.admin.revoke_api_key(&revoked.id, None).await.unwrap();
    app.eventually(Duration::from_secs(2), || async {
        let response = send(
            get()
                .header("x-api-key", &revoked.key)
                .header("x-api-token", &revoked_token),
        )
        .await;
        response.status() == 401
    })
    .await;
    let response = send(
        get()
            .header("x-api-key", &revoked.key)
            .header("x-api-token", &revoked_token),
    )
    .await;
    assert_refusal(response, 401, "api_key_revoked", None).await;
    // Expired: past the token's lifetime (the server's clock is the test's).
    app.clock.advance(chrono::Duration::days(2));
    let response = send(
        get()
            .header("x-api-key", &key.key)
            .header("x-api-token", token),
    )
    .await;
    assert_refusal(response, 401, "token_expired", Some(invalid)).await;
}

/// A body larger than assetpool's own 16 KiB limit passes both ways.
pub async fn large_bodies_pass(app: &TestApp, front: &str, bytes: u64) {
    let (key, token) = logged_in(app).await;
    let client = reqwest::Client::new();
    let upload: Value = client
        .post(format!("{front}/upload"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .body(vec![7_u8; usize::try_from(bytes).unwrap()])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upload["received"], bytes);
    let download = client
        .get(format!("{front}/download/{bytes}"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().len() as u64, bytes);
}

/// The front's answer when the upstream is down (`front` points at a dead port).
pub async fn upstream_down(app: &TestApp, front: &str) {
    let (key, token) = logged_in(app).await;
    let response = reqwest::Client::new()
        .get(format!("{front}/v2/things"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap();
    assert_refusal(response, 502, "upstream_unavailable", None).await;
}

/// The front's answer when the upstream takes longer than the (1 s) timeout.
pub async fn upstream_slow(app: &TestApp, front: &str) {
    let (key, token) = logged_in(app).await;
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{front}/sleep/5000"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token)
        .send()
        .await
        .unwrap();
    assert_refusal(response, 504, "upstream_timeout", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// A WebSocket upgrade passes after the check: refused without a token, and
/// accepted with identity headers instead of credentials, then echoing.
pub async fn websocket_passes_after_the_check(app: &TestApp, front: &str) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::{Error, Message};

    let (key, token) = logged_in(app).await;
    let address = front.trim_start_matches("http://");
    let connect = |with_token: bool| {
        let mut request = format!("ws://{address}/ws").into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("x-api-key", key.key.parse().unwrap());
        if with_token {
            headers.insert("x-api-token", token.parse().unwrap());
        }
        headers.insert("x-assetpool-user-id", "usr_spoofed".parse().unwrap());
        async move {
            let stream = tokio::net::TcpStream::connect(address).await.unwrap();
            tokio_tungstenite::client_async(request, stream).await
        }
    };
    match connect(false).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!(
            "a WebSocket without a token got through: {:?}",
            other.map(|_| ())
        ),
    }
    let (mut socket, response) = connect(true).await.unwrap();
    assert_eq!(response.status(), 101);
    let greeting = socket.next().await.unwrap().unwrap().into_text().unwrap();
    let greeting: Value = serde_json::from_str(&greeting).unwrap();
    let headers = &greeting["headers"];
    assert_eq!(headers["x-assetpool-user-email"][0], "alice@example.com");
    assert_eq!(headers["x-assetpool-key-id"][0], key.id.as_str());
    assert_ne!(headers["x-assetpool-user-id"][0], "usr_spoofed");
    for credential in ["x-api-key", "x-api-token", "authorization"] {
        assert!(
            headers.get(credential).is_none(),
            "{credential} reached the upstream"
        );
    }
    for text in ["first", "second"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = socket.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket.close(None).await.unwrap();
}

/// GET `path` through `front` with the key and token, from `forwarded_for`
/// when given (the test's socket is a trusted proxy where that matters).
pub async fn get_through(
    front: &str,
    path: &str,
    key: &str,
    token: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("{front}{path}"))
        .header("x-api-key", key)
        .header("x-api-token", token);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

/// The answer is `status` with error `code`, from assetpool, not the
/// upstream (which echoes the request); on a mismatch the whole answer is shown.
pub async fn refused(response: reqwest::Response, status: u16, code: &str) {
    let status_was = response.status();
    let headers = format!("{:?}", response.headers());
    let cache_control = response.headers().get("cache-control").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status_was, status, "{code}: {body} {headers}");
    assert_eq!(body["error"], code, "{body}");
    assert!(body.get("path").is_none(), "the upstream answered: {body}");
    assert_eq!(cache_control.unwrap(), "no-store", "{code}");
}

/// Whether the upstream answered (it echoes the request's path).
pub async fn reached_upstream(response: reqwest::Response) -> bool {
    if response.status() != 200 {
        return false;
    }
    let echo: Value = response.json().await.unwrap_or(Value::Null);
    echo["path"] == "/v2/things"
}
