//! The forwarding headers that describe a request's origin (client address,
//! scheme, host, port, path prefix) reach the upstream only as this proxy or
//! a trusted proxy before it (`--trusted-proxy`) set them: a client talking
//! to assetpool directly cannot make the upstream believe another address,
//! scheme or host, whichever header the upstream's framework reads
//! (`Forwarded`, `X-Real-IP`, `X-Forwarded-*`, ...).

use crate::helpers::{Backend, TestApp};
use crate::scenarios::{logged_in, start_upstream};
use crate::tunnels::proxy_before;
use serde_json::Value;

/// Claims of another origin, as a client (or a proxy) may send them.
const ORIGIN_CLAIMS: [(&str, &str); 16] = [
    (
        "forwarded",
        "for=198.51.100.66;proto=https;host=evil.example",
    ),
    ("x-forwarded-for", "198.51.100.66"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-real-ip", "198.51.100.66"),
    ("x-forwarded-port", "443"),
    ("x-forwarded-prefix", "/evil"),
    ("x-forwarded-ssl", "on"),
    ("x-forwarded-scheme", "https"),
    ("x-forwarded-server", "evil.example"),
    ("x-url-scheme", "https"),
    ("front-end-https", "on"),
    ("true-client-ip", "198.51.100.66"),
    ("x-client-ip", "198.51.100.66"),
    ("cf-connecting-ip", "198.51.100.66"),
    ("x-cluster-client-ip", "198.51.100.66"),
];

/// Other spellings of the same, which CGI-style upstreams read as the real ones.
const OTHER_SPELLINGS: [(&str, &str); 3] = [
    ("X_Real_IP", "198.51.100.66"),
    ("x_forwarded_ssl", "on"),
    ("X.Forwarded.Prefix", "/evil"),
];

/// Sends a request with every origin claim through `app`; the headers the
/// upstream received.
async fn upstream_headers(app: &TestApp) -> Value {
    let (key, token) = logged_in(app).await;
    let mut request = app
        .client
        .get(app.url("/v2/origin"))
        .header("x-api-key", &key.key)
        .header("x-api-token", &token);
    for (name, value) in ORIGIN_CLAIMS.iter().chain(&OTHER_SPELLINGS) {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    echo["headers"].clone()
}

fn single<'a>(headers: &'a Value, name: &str) -> &'a str {
    let values = headers[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} missing: {headers}"));
    assert_eq!(values.len(), 1, "{name}: {values:?}");
    values[0].as_str().unwrap()
}

#[tokio::test]
async fn a_clients_origin_claims_never_reach_the_upstream() {
    let app = proxy_before(Backend::Sqlite, start_upstream().await, |_| {}).await;
    let headers = upstream_headers(&app).await;
    let host = app.address.trim_start_matches("http://");
    // This hop is described by this proxy alone...
    assert_eq!(single(&headers, "x-forwarded-proto"), "http");
    assert_eq!(single(&headers, "x-forwarded-host"), host);
    // ...and the client's own chain is kept, with the real peer appended
    // (an upstream trusts only the entries its own proxies added).
    assert_eq!(
        single(&headers, "x-forwarded-for"),
        "198.51.100.66, 127.0.0.1"
    );
    for (name, _) in ORIGIN_CLAIMS {
        if !["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"].contains(&name) {
            assert!(headers.get(name).is_none(), "{name} reached the upstream");
        }
    }
    for (name, _) in OTHER_SPELLINGS {
        assert!(
            headers.get(name.to_ascii_lowercase()).is_none(),
            "{name} reached the upstream"
        );
    }
    let text = headers.to_string();
    assert!(!text.contains("evil"), "a claimed origin arrived: {text}");
    assert!(!text.contains("\"on\""), "a claimed scheme arrived: {text}");
}

#[tokio::test]
async fn a_trusted_proxys_origin_headers_pass_and_forwarded_gains_this_hop() {
    let app = proxy_before(Backend::Sqlite, start_upstream().await, |settings| {
        settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let headers = upstream_headers(&app).await;
    let host = app.address.trim_start_matches("http://");
    for (name, value) in ORIGIN_CLAIMS {
        match name {
            "forwarded" => assert_eq!(
                single(&headers, name),
                format!("{value}, for=127.0.0.1;proto=http;host=\"{host}\"")
            ),
            "x-forwarded-for" => {
                assert_eq!(single(&headers, name), format!("{value}, 127.0.0.1"));
            }
            _ => assert_eq!(single(&headers, name), value, "{name}"),
        }
    }
    // Other spellings are never the proxy's own: dropped from anyone.
    for (name, _) in OTHER_SPELLINGS {
        assert!(
            headers.get(name.to_ascii_lowercase()).is_none(),
            "{name} reached the upstream"
        );
    }
}
