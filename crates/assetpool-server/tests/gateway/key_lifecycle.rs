//! Disabled keys and network allow-lists in front of a real upstream: the
//! reverse proxy and `/auth/verify` refuse what the API refuses (nothing
//! reaches the upstream), let it through again once the key is enabled or
//! the address allowed, and close the WebSocket tunnels of a key that is
//! disabled or whose allow-list no longer admits their client.

use crate::backend_tests;
use crate::helpers::Backend;
use crate::scenarios::{
    get_through, logged_in, reached_upstream, refused, start_upstream, start_upstream_counting,
};
use crate::tunnels::{assert_echoes, closed_within, open_tunnel, proxy_before, REVOCATION_LIMIT};
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::store::ApiKeyUpdate;
use assetpool_core::Environment;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(1);

fn allow(cidrs: &[&str]) -> ApiKeyUpdate {
    ApiKeyUpdate {
        allowed_networks: Some(Some(AllowedNetworks::parse(cidrs).unwrap())),
        ..ApiKeyUpdate::default()
    }
}

backend_tests! {
    async fn a_disabled_key_is_refused_by_the_proxy_and_forward_auth(backend) {
        let app = proxy_before(backend, start_upstream().await, |_| {}).await;
        let front = app.address.clone();
        let (key, token) = logged_in(&app).await;
        let sibling = app
            .create_key_in(Environment::Production, Some(&key.application))
            .await;
        assert!(reached_upstream(get_through(&front, "/v2/things", &key.key, &token, None).await).await);
        app.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        app.eventually(WITHIN, || async {
            get_through(&front, "/v2/things", &key.key, &token, None).await.status() == 401
        })
        .await;
        refused(get_through(&front, "/v2/things", &key.key, &token, None).await, 401, "api_key_disabled").await;
        refused(get_through(&front, "/auth/verify", &key.key, &token, None).await, 401, "api_key_disabled").await;
        let through_sibling = get_through(&front, "/v2/things", &sibling.key, &token, None).await;
        assert_eq!(through_sibling.status(), 401, "{:?}", through_sibling.headers());
        assert_eq!(
            through_sibling.headers()["www-authenticate"],
            r#"Bearer realm="assetpool", error="invalid_token""#
        );
        refused(through_sibling, 401, "token_revoked").await;
        refused(get_through(&front, "/auth/verify", &sibling.key, &token, None).await, 401, "token_revoked").await;

        app.admin.set_api_key_disabled(&key.id, false).await.unwrap();
        app.eventually(WITHIN, || async {
            reached_upstream(get_through(&front, "/v2/things", &sibling.key, &token, None).await).await
        })
        .await;
        let verify = get_through(&front, "/auth/verify", &key.key, &token, None).await;
        assert_eq!(verify.status(), 200);
        assert_eq!(verify.headers()["x-assetpool-key-id"], key.id.as_str());
    }

    async fn the_allow_list_judges_the_address_a_trusted_proxy_forwards(backend) {
        let app = proxy_before(backend, start_upstream().await, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        let front = app.address.clone();
        let (key, token) = logged_in(&app).await;
        app.admin
            .update_api_key(&key.id, allow(&["203.0.113.0/24"]))
            .await
            .unwrap();
        let inside = Some("203.0.113.50");
        let outside = Some("198.51.100.50");
        app.eventually(WITHIN, || async {
            get_through(&front, "/v2/things", &key.key, &token, outside).await.status() == 403
        })
        .await;
        refused(get_through(&front, "/v2/things", &key.key, &token, outside).await, 403, "address_not_allowed").await;
        refused(get_through(&front, "/auth/verify", &key.key, &token, outside).await, 403, "address_not_allowed").await;
        // No forwarding header: the socket's own 127.0.0.1 is outside the list.
        refused(get_through(&front, "/v2/things", &key.key, &token, None).await, 403, "address_not_allowed").await;
        assert!(reached_upstream(get_through(&front, "/v2/things", &key.key, &token, inside).await).await);
        let verify = get_through(&front, "/auth/verify", &key.key, &token, inside).await;
        assert_eq!(verify.status(), 200);
    }

    async fn disabling_the_key_or_narrowing_its_allow_list_closes_its_tunnels(backend) {
        let (upstream, _open) = start_upstream_counting().await;
        let app = proxy_before(backend, upstream, |_| {}).await;
        let (key, token) = logged_in(&app).await;
        let sibling = app
            .create_key_in(Environment::Production, Some(&key.application))
            .await;
        let (other_key, other_token) = logged_in(&app).await;
        let (mut own, _) = open_tunnel(&app.address, &key.key, &token).await;
        let (mut through_sibling, _) = open_tunnel(&app.address, &sibling.key, &token).await;
        let (mut other, _) = open_tunnel(&app.address, &other_key.key, &other_token).await;
        assert_echoes(&mut own, "before").await;
        app.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        let took = closed_within(&mut own, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after its key was disabled ({backend:?})");
        let took = closed_within(&mut through_sibling, REVOCATION_LIMIT).await;
        eprintln!("a sibling's tunnel of that session closed after {took:?} ({backend:?})");
        assert_echoes(&mut other, "another key").await;

        // The tests' client is 127.0.0.1: a list without it closes the tunnel.
        app.admin
            .update_api_key(&other_key.id, allow(&["203.0.113.0/24"]))
            .await
            .unwrap();
        let took = closed_within(&mut other, REVOCATION_LIMIT).await;
        eprintln!("tunnel closed {took:?} after its allow-list changed ({backend:?})");
    }
}

#[tokio::test]
async fn a_tunnel_whose_client_stays_allowed_stays_open() {
    let (upstream, _open) = start_upstream_counting().await;
    let app = proxy_before(Backend::Sqlite, upstream, |_| {}).await;
    let (key, token) = logged_in(&app).await;
    let (mut socket, _) = open_tunnel(&app.address, &key.key, &token).await;
    app.admin
        .update_api_key(&key.id, allow(&["127.0.0.0/8", "2001:db8::/32"]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_echoes(&mut socket, "still allowed").await;
}
