//! `assetpool-client` against the real server.

use crate::helpers::{eventually, Server, EMAIL};
use assetpool_client::{Client, Credentials, Error, ErrorCode, RequestBuilderExt};
use assetpool_wire::ResourceResponse;
use std::time::{Duration, Instant};

#[tokio::test]
async fn renews_the_token_across_its_expiry() {
    let server = Server::spawn(Duration::from_secs(2)).await;
    let client = server.client();
    let started = Instant::now();
    let mut tokens = std::collections::HashSet::new();
    // Three token lifetimes, a call every 200 ms: every call succeeds.
    while started.elapsed() < Duration::from_secs(6) {
        let who: ResourceResponse = client.get_json("/v1/resource").await.unwrap();
        assert_eq!(who.user.email, EMAIL);
        tokens.insert(client.access_token().await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(tokens.len() >= 3, "{} tokens", tokens.len());
    // One password login; every renewal after it used the refresh token.
    assert_eq!(client.stats().logins, 1);
    assert!(client.stats().refreshes >= 2, "{:?}", client.stats());
    assert_eq!(server.logins().await, 1);
    assert_eq!(server.refreshes().await, client.stats().refreshes);
}

#[tokio::test]
async fn one_login_for_a_hundred_concurrent_calls() {
    let server = Server::spawn(Duration::from_secs(3)).await;
    let client = server.client();
    let calls = |client: Client| async move {
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(
                    async move { client.get("/v1/resource").unwrap().send_with(&client).await },
                )
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().status(), 200);
        }
    };
    calls(client.clone()).await;
    assert_eq!(
        server.logins().await,
        1,
        "the server saw more than one login"
    );
    assert_eq!(client.stats().logins, 1);
    assert_eq!(server.refreshes().await, 0);
    // After the token's lifetime, a hundred callers again share one renewal.
    tokio::time::sleep(Duration::from_secs(3)).await;
    calls(client.clone()).await;
    assert_eq!(server.logins().await, 1);
    assert_eq!(server.refreshes().await, 1, "one refresh for all callers");
}

#[tokio::test]
async fn a_revoked_session_is_replaced_by_a_new_login() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let client = server.client();
    assert_eq!(
        client
            .send(client.get("/v1/resource").unwrap())
            .await
            .unwrap()
            .status(),
        200
    );
    let revoked = client.access_token().await.unwrap();
    server.logout(&revoked).await;
    eventually(Duration::from_secs(2), || async {
        server.resource_status(&revoked).await.1 == "token_revoked"
    })
    .await;
    // token_revoked: the refresh token died with the session, so the client logs in again.
    let who: ResourceResponse = client.get_json("/v1/resource").await.unwrap();
    assert_eq!(who.user.email, EMAIL);
    assert_ne!(client.access_token().await.unwrap(), revoked);
    assert_eq!(client.stats().logins, 2);
    assert_eq!(server.logins().await, 2);
    assert_eq!(
        server
            .metric(
                r#"assetpool_http_requests_total{route="/api/authentication/refresh",status="401"}"#
            )
            .await,
        1
    );
}

#[tokio::test]
async fn refusals_carry_the_contract_error_code() {
    let server = Server::spawn(Duration::from_secs(3600)).await;
    let wrong = Client::builder(
        &server.address,
        &server.key,
        Credentials::new(EMAIL, "not the right password"),
    )
    .build()
    .unwrap();
    let error = wrong
        .send(wrong.get("/v1/resource").unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidCredentials));
    assert_eq!(error.status(), Some(401));
    assert!(!format!("{error:?} {wrong:?}").contains("not the right password"));

    // The last character changed (to another one than it was): the checksum fails.
    let (body, last) = server.key.split_at(server.key.len() - 1);
    let bad_key = format!("{body}{}", if last == "x" { "y" } else { "x" });
    let client = Client::builder(&server.address, &bad_key, Credentials::new(EMAIL, "x"))
        .build()
        .unwrap();
    let error = client.login().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidApiKey));
    assert!(!format!("{error:?} {client:?}").contains(&bad_key));

    let client = server.client();
    match client.send(client.get("/no/such/route").unwrap()).await {
        Err(Error::Api(refusal)) => {
            assert_eq!(refusal.status, 404);
            assert_eq!(refusal.code, Some(ErrorCode::NotFound));
        }
        other => panic!("expected a 404 refusal, got {other:?}"),
    }
    let unreachable = Client::builder(
        "http://127.0.0.1:9",
        &server.key,
        Credentials::new(EMAIL, "x"),
    )
    .timeout(Duration::from_secs(2))
    .build()
    .unwrap();
    assert!(matches!(
        unreachable.login().await,
        Err(Error::Transport(_))
    ));
}
