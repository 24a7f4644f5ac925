//! Alert webhooks against a real local receiver: signed, retried with
//! backoff, delivered once across a restart, owner webhooks with their own
//! secret, given up after 24 hours.

use crate::admin::admin_session;
use crate::backend_tests;
use crate::helpers::{assert_error, TestApp};
use assetpool_core::admin::{Actor, CreateApiKey};
use assetpool_core::alerts::{AlertRule, Trigger};
use assetpool_core::ids::{AlertId, KeyId};
use assetpool_core::store::RaisedAlert;
use assetpool_core::webhook_target::WebhookTargets;
use assetpool_core::{Environment, ManualClock};
use assetpool_server::state::AppState;
use assetpool_server::ServerSettings;
use assetpool_wire::AlertWebhookPayload;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

const SECRET: &str = "operators-webhook-secret-0123456789";

// ---------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    delivery: String,
    signature: String,
    content_type: String,
    user_agent: String,
    body: String,
    status: u16,
}

#[derive(Debug, Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_first: usize,
    /// Wait this long before answering.
    delay: Duration,
}

struct Receiver {
    address: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let status = {
        let mut received = state.received.lock().unwrap();
        let status = if received.len() < state.fail_first {
            500
        } else {
            200
        };
        received.push(Received {
            path: uri.path().to_owned(),
            delivery: header("assetpool-delivery"),
            signature: header("assetpool-signature"),
            content_type: header("content-type"),
            user_agent: header("user-agent"),
            body: String::from_utf8(body.to_vec()).unwrap(),
            status,
        });
        status
    };
    tokio::time::sleep(state.delay).await;
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::on(listener, fail_first, Duration::ZERO)
    }

    fn on(listener: TcpListener, fail_first: usize, delay: Duration) -> Receiver {
        let address = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState {
            received: Mutex::new(Vec::new()),
            fail_first,
            delay,
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            address,
            state,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|received| received.status == 200)
            .collect()
    }
}

/// A free local port nobody listens on (for now).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------
// Checks and helpers
// ---------------------------------------------------------------------------

fn unhex(text: &str) -> Vec<u8> {
    assert_eq!(text.len() % 2, 0, "hex of even length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}

/// Verifies an `Assetpool-Signature` as a receiver would: recent `t`, and
/// HMAC-SHA256 over `"<t>.<body>"`.
fn signature_verifies(received: &Received, secret: &str) -> bool {
    let (t, v1) = received.signature.split_once(',').expect("t=...,v1=...");
    let timestamp: u64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    let signature = unhex(v1.strip_prefix("v1=").unwrap());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp) < 60, "t is close to now");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signed = format!("{timestamp}.{}", received.body);
    ring::hmac::verify(&key, signed.as_bytes(), &signature).is_ok()
}

fn configure(webhooks: Vec<String>) -> impl FnOnce(&mut ServerSettings) {
    move |settings| {
        // The receivers listen on 127.0.0.1: owner webhooks may point there
        // (`--allow-private-webhooks`).
        settings.alerts.owner_webhook_targets = WebhookTargets::Any;
        settings.alerts.webhooks = webhooks;
        settings.webhooks.global_secret = Some(SecretString::from(SECRET));
        settings.webhooks.retry_base = Duration::from_millis(200);
        settings.webhooks.poll_interval = Duration::from_millis(50);
    }
}

async fn new_key(state: &AppState) -> KeyId {
    state
        .service
        .admin(Actor::Service {
            name: "test".to_owned(),
        })
        .create_api_key(CreateApiKey {
            name: "watched".to_owned(),
            environment: Environment::Production,
            application_id: None,
            expires_in: None,
            limits: Default::default(),
            metadata: None,
            owner: None,
            allowed_networks: None,
            scopes: None,
        })
        .await
        .unwrap()
        .record
        .id
}

async fn raise(state: &AppState, key_id: &KeyId, rule: AlertRule) -> RaisedAlert {
    let service = &state.service;
    let trigger = Trigger::for_key(
        rule,
        key_id,
        json!({"address": "203.0.113.7"}),
        service.clock().now(),
    );
    let raised = service
        .alerts()
        .raise(service.store().as_ref(), trigger)
        .await
        .unwrap();
    assert!(raised.created);
    raised
}

async fn backlog(state: &AppState) -> u64 {
    state.service.store().webhook_backlog().await.unwrap()
}

/// Moves `clock` on by a second every 50 ms (real time) until `check` holds
/// (at most 20 s).
async fn advancing_until(clock: &ManualClock, mut check: impl FnMut() -> bool) {
    let limit = Duration::from_secs(20);
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets the worker run for a while with the clock moving, so any extra
/// attempt would show.
async fn settle(clock: &ManualClock) {
    for _ in 0..10 {
        clock.advance(chrono::Duration::minutes(2));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

backend_tests! {
    async fn failed_deliveries_are_retried_with_the_same_id_body_and_a_valid_signature(backend) {
        let receiver = Receiver::start(2).await;
        let app = TestApp::spawn_with(backend, configure(vec![receiver.url("/hook")])).await;
        let key = app.create_key(Environment::Production).await;
        let raised = raise(&app.state, &key.id, AlertRule::RevokedKeyUsed).await;

        advancing_until(&app.clock, || !receiver.delivered().is_empty()).await;
        settle(&app.clock).await;

        let received = receiver.received();
        let statuses: Vec<u16> = received.iter().map(|received| received.status).collect();
        assert_eq!(statuses, [500, 500, 200], "two failures, then one delivery");
        let first = &received[0];
        let payload: AlertWebhookPayload = serde_json::from_str(&first.body).unwrap();
        assert_eq!(payload.kind, "alert.raised");
        assert_eq!(payload.delivery_id, first.delivery);
        assert_eq!(payload.alert.id, raised.alert.id.as_str());
        assert_eq!(payload.alert.rule, "revoked_key_used");
        assert_eq!(payload.alert.api_key.as_deref(), Some(key.id.as_str()));
        for attempt in &received {
            assert_eq!(attempt.path, "/hook");
            assert_eq!(attempt.delivery, first.delivery, "same delivery id on every attempt");
            assert_eq!(attempt.body, first.body, "same body on every attempt");
            assert_eq!(attempt.content_type, "application/json");
            assert!(attempt.user_agent.starts_with("assetpool/"), "{}", attempt.user_agent);
            assert!(signature_verifies(attempt, SECRET), "signature of {attempt:?}");
            assert!(!signature_verifies(attempt, "another-secret-0123456789"));
        }
        assert_eq!(backlog(&app.state).await, 0);
    }

    async fn an_owner_webhook_gets_the_alert_signed_with_its_own_secret(backend) {
        let receiver = Receiver::start(0).await;
        let app = TestApp::spawn_with(backend, configure(vec![receiver.url("/operators")])).await;
        let key = app.create_key(Environment::Production).await;
        let owner_secret = app
            .admin
            .set_key_webhook(&key.id, Some(&receiver.url("/owner?token=abc")))
            .await
            .unwrap()
            .expect("a new secret, shown once");
        let owner_secret = secrecy::ExposeSecret::expose_secret(&owner_secret).to_owned();
        let raised = raise(&app.state, &key.id, AlertRule::NewNetwork).await;

        advancing_until(&app.clock, || receiver.delivered().len() == 2).await;
        settle(&app.clock).await;

        let received = receiver.received();
        assert_eq!(received.len(), 2, "{received:?}");
        let to = |path: &str| received.iter().find(|received| received.path == path).unwrap();
        let (operators, owner) = (to("/operators"), to("/owner"));
        assert_ne!(operators.delivery, owner.delivery, "one delivery per destination");
        assert!(signature_verifies(operators, SECRET));
        assert!(!signature_verifies(operators, &owner_secret));
        assert!(signature_verifies(owner, &owner_secret));
        assert!(!signature_verifies(owner, SECRET));
        for delivery in [operators, owner] {
            let payload: AlertWebhookPayload = serde_json::from_str(&delivery.body).unwrap();
            assert_eq!(payload.alert.id, raised.alert.id.as_str());
            assert_eq!(payload.delivery_id, delivery.delivery);
        }
        assert_eq!(backlog(&app.state).await, 0);
    }

    async fn a_removed_owner_webhook_is_given_up(backend) {
        let receiver = Receiver::start(1).await;
        let app = TestApp::spawn_with(backend, configure(Vec::new())).await;
        let key = app.create_key(Environment::Production).await;
        app.admin
            .set_key_webhook(&key.id, Some(&receiver.url("/owner")))
            .await
            .unwrap();
        raise(&app.state, &key.id, AlertRule::KeyLeaked).await;
        app.eventually(Duration::from_secs(10), || async { !receiver.received().is_empty() })
            .await;
        app.admin.set_key_webhook(&key.id, None).await.unwrap();
        let state = app.state.clone();
        app.eventually(Duration::from_secs(10), || {
            app.clock.advance(chrono::Duration::seconds(5));
            let state = state.clone();
            async move { backlog(&state).await == 0 }
        })
        .await;
        settle(&app.clock).await;
        assert_eq!(receiver.received().len(), 1, "not sent once the owner removed it");
    }

    async fn a_delivery_failing_for_24_hours_is_given_up(backend) {
        let receiver = Receiver::start(usize::MAX).await;
        let app = TestApp::spawn_with(backend, configure(vec![receiver.url("/hook")])).await;
        let key = app.create_key(Environment::Production).await;
        raise(&app.state, &key.id, AlertRule::ExpiredKeyUsed).await;

        advancing_until(&app.clock, || receiver.received().len() >= 3).await;
        assert_eq!(backlog(&app.state).await, 1, "still retried after failures");

        // Past 24 hours since the alert: the next failure gives it up.
        app.clock.advance(chrono::Duration::hours(25));
        let state = app.state.clone();
        app.eventually(Duration::from_secs(10), || {
            let state = state.clone();
            async move { backlog(&state).await == 0 }
        })
        .await;
        let attempts = receiver.received().len();
        settle(&app.clock).await;
        app.clock.advance(chrono::Duration::days(3));
        settle(&app.clock).await;
        assert_eq!(receiver.received().len(), attempts, "not retried once given up");
        assert!(receiver.delivered().is_empty());
    }

    async fn an_outage_across_a_restart_loses_nothing_and_sends_once(backend) {
        let address = closed_port().await;
        let url = format!("http://{address}/hook");

        // Server A: the receiver is down; every attempt fails.
        let server = TestApp::spawn_with(backend, configure(vec![url.clone()])).await;
        let database_url = server.database_url.clone();
        let first = new_key(&server.state).await;
        let second = new_key(&server.state).await;
        let alerts = [
            raise(&server.state, &first, AlertRule::RevokedKeyUsed).await.alert.id,
            raise(&server.state, &second, AlertRule::RateSpike).await.alert.id,
        ];
        settle(&server.clock).await;
        assert_eq!(backlog(&server.state).await, 2);
        let storage = server.stop().await;

        // The receiver comes back; server B on the same database delivers.
        let receiver = Receiver::on(TcpListener::bind(address).await.unwrap(), 0, Duration::ZERO);
        let server = TestApp::start(database_url, storage, configure(vec![url])).await;
        // Its clock starts where A's did: move past A's scheduled retries.
        server.clock.advance(chrono::Duration::hours(1));
        advancing_until(&server.clock, || receiver.delivered().len() >= 2).await;
        settle(&server.clock).await;

        let received = receiver.received();
        assert_eq!(received.len(), 2, "each delivered exactly once: {received:?}");
        assert_ne!(received[0].delivery, received[1].delivery);
        let mut delivered: Vec<AlertId> = received
            .iter()
            .map(|received| {
                assert!(signature_verifies(received, SECRET));
                serde_json::from_str::<AlertWebhookPayload>(&received.body).unwrap().alert.id.into()
            })
            .collect();
        delivered.sort();
        let mut expected = alerts.to_vec();
        expected.sort();
        assert_eq!(delivered, expected, "one delivery per alert");
        assert_eq!(backlog(&server.state).await, 0);
        server.stop().await;
    }

    async fn a_graceful_stop_mid_delivery_records_it_and_sends_nothing_twice(backend) {
        let receiver = Receiver::on(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            0,
            Duration::from_millis(800),
        );
        let server = TestApp::spawn_with(backend, configure(vec![receiver.url("/slow")])).await;
        let database_url = server.database_url.clone();
        let key = new_key(&server.state).await;
        raise(&server.state, &key, AlertRule::WrongEnvironment).await;
        let started = Instant::now();
        while receiver.received().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "the POST starts");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Stop while the receiver is still answering.
        let storage = server.stop().await;

        let server =
            TestApp::start(database_url, storage, configure(vec![receiver.url("/slow")])).await;
        assert_eq!(backlog(&server.state).await, 0, "the answer was recorded at shutdown");
        // Well past the claim's lease: nothing is sent again.
        settle(&server.clock).await;
        assert_eq!(receiver.received().len(), 1);
        server.stop().await;
    }

    /// Without `--allow-private-webhooks`, an owner webhook naming a
    /// private, loopback or link-local address (as the URL parser reads it)
    /// or `localhost` is refused when set over the admin API: 400
    /// `invalid_request`, nothing stored.
    async fn owner_webhooks_to_private_addresses_are_refused_when_set(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = admin_session(&app).await;
        let key = app.create_key(Environment::Production).await;
        let path = format!("/admin/keys/{}", key.id);
        for url in [
            "http://127.0.0.1:6379/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/hook",
            "http://[::1]:8080/hook",
            "http://[fd00::1]/hook",
            "http://2130706433/hook",
            "http://0x7f.1/hook",
            "https://localhost/hook",
            "http://user:pw@192.168.1.1/hook",
        ] {
            let response = admin
                .request(&app, axum::http::Method::PATCH, &path)
                .json(&json!({ "webhook": url }))
                .send()
                .await
                .unwrap();
            let error = assert_error(response, 400, "invalid_request").await;
            assert!(error["message"].as_str().unwrap().contains("private"), "{url}: {error}");
        }
        assert!(app.state.service.store().key_webhook(&key.id).await.unwrap().is_none());
        // A public name is fine.
        let response = admin
            .request(&app, axum::http::Method::PATCH, &path)
            .json(&json!({ "webhook": "https://hooks.example.com/assetpool" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// A stored owner webhook is checked again at every delivery: a name
    /// that resolves to 127.0.0.1 and an address literal (set while private
    /// targets were allowed) are never connected to, while the operators'
    /// webhook of the same alerts, on the same receiver, is delivered.
    async fn owner_webhooks_reach_no_private_address_at_delivery(backend) {
        let receiver = Receiver::start(0).await;
        let operators = receiver.url("/operators");
        let app = TestApp::spawn_with(backend, move |settings| {
            configure(vec![operators])(settings);
            settings.alerts.owner_webhook_targets = WebhookTargets::PublicOnly;
        })
        .await;
        let permissive = app
            .state
            .service
            .admin(Actor::Service { name: "test".to_owned() })
            .with_webhook_targets(WebhookTargets::Any);
        let by_name = app.create_key(Environment::Production).await;
        let by_address = app.create_key(Environment::Production).await;
        let port = receiver.address.port();
        let targets = [
            (&by_name, format!("http://localhost:{port}/owner-by-name")),
            (&by_address, format!("http://2130706433:{port}/owner-by-address")),
        ];
        for (key, url) in &targets {
            permissive.set_key_webhook(&key.id, Some(url)).await.unwrap();
            raise(&app.state, &key.id, AlertRule::KeyLeaked).await;
        }
        advancing_until(&app.clock, || receiver.delivered().len() == 2).await;
        settle(&app.clock).await;
        let paths: Vec<String> = receiver.received().into_iter().map(|received| received.path).collect();
        assert_eq!(paths, ["/operators", "/operators"], "{paths:?}");
    }
}
