//! Alert webhook delivery from the persistent outbox.
//!
//! [`assetpool_core::alerts::Alerts::raise`] writes one `webhook_deliveries`
//! row per destination in the same transaction as the alert, with the exact
//! JSON body. This worker claims due rows every [`WebhookSettings::poll_interval`]
//! (the claim takes a lease, so no other server sends them meanwhile), POSTs
//! them signed with HMAC-SHA256 (`Assetpool-Signature: t=<unix seconds>,v1=<hex>`
//! over `"<t>.<body>"`), and records each result: delivered on 2xx, else
//! retried with exponential backoff, and given up only after a failure once
//! [`WebhookSettings::give_up_after`] (24 h) has passed since the alert.
//!
//! Owner webhooks reach only the addresses the service's
//! [`WebhookTargets`] allow (public ones unless `--allow-private-webhooks`):
//! an address literal is checked before the POST, a name is resolved by
//! a resolver that keeps public addresses only, and no proxy is used for them. Operators' own
//! webhooks (`secret_ref` `global`) come from the server's configuration and
//! are sent as configured.
//!
//! On stop, the POSTs in flight finish (bounded by their timeout) and their
//! results are recorded; claimed deliveries not yet started are released for
//! the next server. A crash between a receiver's 2xx and the record of it
//! sends that delivery again once its lease ends: receivers drop repeated
//! `Assetpool-Delivery` ids (`docs/webhooks.md`).

use crate::settings::WebhookSettings;
use assetpool_core::ids::KeyId;
use assetpool_core::store::WebhookDelivery;
use assetpool_core::webhook_target::{is_public_address, WebhookTargets};
use assetpool_core::AuthService;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretSlice};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Header naming the delivery (the same on every attempt).
pub const DELIVERY_HEADER: &str = "Assetpool-Delivery";
/// Header carrying the timestamp and signature.
pub const SIGNATURE_HEADER: &str = "Assetpool-Signature";
/// What one attempt came to.
#[derive(Debug)]
enum Outcome {
    Delivered,
    Retry(String),
    GiveUp(String),
}

struct Worker {
    service: Arc<AuthService>,
    settings: WebhookSettings,
    /// Sends to operators' webhooks (their own configuration: any address).
    client: reqwest::Client,
    /// Sends to owner webhooks: connects only to addresses `owner_targets`
    /// allows ([`delivery_client`]).
    owner_client: reqwest::Client,
    owner_targets: WebhookTargets,
    random: ring::rand::SystemRandom,
}

/// The HTTP client of deliveries: no redirect followed, the connect
/// timeout of one attempt. For [`WebhookTargets::PublicOnly`], every name
/// is resolved by [`PublicAddressesOnly`], and no proxy from the
/// environment is used (a proxy would resolve and reach the name itself).
fn delivery_client(
    settings: &WebhookSettings,
    targets: WebhookTargets,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("assetpool/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.attempt_timeout);
    match targets {
        WebhookTargets::Any => builder.build(),
        WebhookTargets::PublicOnly => builder
            .no_proxy()
            .dns_resolver(Arc::new(PublicAddressesOnly))
            .build(),
    }
}

/// A resolver that keeps only public addresses
/// ([`assetpool_core::webhook_target::is_public_address`]); a name with none
/// left is an error, so nothing private is ever connected to, whatever the
/// name resolves to at the time of the delivery.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> = resolved
                .filter(|address| is_public_address(address.ip()))
                .collect();
            if public.is_empty() {
                let refusal: Box<dyn std::error::Error + Send + Sync> =
                    format!("refused: {host} resolves to no public address").into();
                return Err(refusal);
            }
            let addresses: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addresses)
        })
    }
}

/// Starts the delivery worker; it stops when `stop` turns true (or its
/// sender is dropped), after recording the POSTs in flight.
pub fn spawn(
    service: Arc<AuthService>,
    settings: WebhookSettings,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let owner_targets = service.alerts().settings().owner_webhook_targets;
        let clients = delivery_client(&settings, WebhookTargets::Any)
            .and_then(|client| Ok((client, delivery_client(&settings, owner_targets)?)));
        let (client, owner_client) = match clients {
            Ok(clients) => clients,
            Err(error) => {
                tracing::error!(%error, "cannot start webhook delivery");
                return;
            }
        };
        let mut ticker = tokio::time::interval(settings.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let worker = Arc::new(Worker {
            service,
            settings,
            client,
            owner_client,
            owner_targets,
            random: ring::rand::SystemRandom::new(),
        });
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            worker.run_batch(&stop).await;
        }
    })
}

impl Worker {
    /// Claims due deliveries and sends them, at most `concurrency` at once;
    /// returns once every started one is recorded.
    async fn run_batch(self: &Arc<Self>, stop: &watch::Receiver<bool>) {
        let store = self.service.store();
        let now = self.service.clock().now();
        let claimed = match store
            .claim_webhook_deliveries(now, now + self.settings.lease, self.settings.batch_size)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "cannot claim webhook deliveries");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut running = JoinSet::new();
        for delivery in claimed {
            let permit = if *stop.borrow() {
                None
            } else {
                slots.clone().acquire_owned().await.ok()
            };
            match permit {
                Some(permit) if !*stop.borrow() => {
                    let worker = self.clone();
                    running.spawn(async move {
                        worker.deliver(delivery).await;
                        drop(permit);
                    });
                }
                _ => self.release(&delivery).await,
            }
        }
        while let Some(joined) = running.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a webhook delivery task failed");
            }
        }
    }

    /// Gives back a claimed delivery not attempted because the server stops.
    async fn release(&self, delivery: &WebhookDelivery) {
        let now = self.service.clock().now();
        if let Err(error) = self
            .service
            .store()
            .fail_webhook_delivery(&delivery.id, "not attempted: server stopping", Some(now))
            .await
        {
            tracing::warn!(delivery = %delivery.id, %error, "cannot release a webhook delivery");
        }
    }

    /// One attempt, and its record.
    async fn deliver(&self, delivery: WebhookDelivery) {
        let outcome = match self.secret_for(&delivery).await {
            Ok(secret) => self.post(&delivery, &secret).await,
            Err(outcome) => outcome,
        };
        self.record(&delivery, outcome).await;
    }

    /// The signing secret of a delivery, or why there is none.
    async fn secret_for(&self, delivery: &WebhookDelivery) -> Result<SecretSlice<u8>, Outcome> {
        if delivery.secret_ref == "global" {
            return self
                .settings
                .global_secret
                .as_ref()
                .map(|secret| SecretSlice::from(secret.expose_secret().as_bytes().to_vec()))
                .ok_or_else(|| Outcome::Retry("no --alert-webhook-secret configured".to_owned()));
        }
        let Some(key_id) = delivery.secret_ref.strip_prefix("key:") else {
            return Err(Outcome::GiveUp(
                "unknown signing secret reference".to_owned(),
            ));
        };
        let key_id = KeyId::from(key_id);
        let webhook = match self.service.store().key_webhook(&key_id).await {
            Ok(Some(webhook)) => webhook,
            Ok(None) => return Err(Outcome::GiveUp("owner webhook removed".to_owned())),
            Err(error) => return Err(Outcome::Retry(format!("storage: {error}"))),
        };
        if webhook.url != delivery.url {
            return Err(Outcome::GiveUp("owner webhook changed".to_owned()));
        }
        let seal_id = assetpool_core::admin::webhook_seal_id(&key_id);
        self.service
            .sealer()
            .open_allowing_plain(&seal_id, &webhook.sealed_secret)
            .map(SecretSlice::from)
            .map_err(|_| Outcome::Retry("cannot open the owner webhook secret".to_owned()))
    }

    /// POSTs the stored body, signed: to an owner webhook through the
    /// client that reaches allowed addresses only, and never to an address
    /// literal that is not allowed.
    async fn post(&self, delivery: &WebhookDelivery, secret: &SecretSlice<u8>) -> Outcome {
        let client = if delivery.secret_ref == "global" {
            &self.client
        } else {
            if !literal_host_allowed(&delivery.url, self.owner_targets) {
                return Outcome::GiveUp(
                    "refused: the webhook points to a private, loopback or link-local address \
                     (--allow-private-webhooks)"
                        .to_owned(),
                );
            }
            &self.owner_client
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let signature = signature_header(secret.expose_secret(), timestamp, &delivery.payload);
        let sent = client
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &delivery.id)
            .header(SIGNATURE_HEADER, signature)
            .body(delivery.payload.clone())
            .timeout(self.settings.attempt_timeout)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => Outcome::Retry(format!("HTTP {}", response.status().as_u16())),
            Err(error) => Outcome::Retry(describe(&error)),
        }
    }

    /// Writes the outcome of an attempt.
    async fn record(&self, delivery: &WebhookDelivery, outcome: Outcome) {
        let store = self.service.store();
        let now = self.service.clock().now();
        let (reason, retry_at) = match outcome {
            Outcome::Delivered => {
                if let Err(error) = store.complete_webhook_delivery(&delivery.id, now).await {
                    tracing::error!(
                        delivery = %delivery.id,
                        %error,
                        "webhook delivered but not recorded: it may be sent again"
                    );
                }
                return;
            }
            Outcome::Retry(reason) => {
                let retry_at = self.retry_at(delivery, now);
                (reason, retry_at)
            }
            Outcome::GiveUp(reason) => (reason, None),
        };
        tracing::warn!(
            delivery = %delivery.id,
            alert = %delivery.alert_id,
            host = %url_host(&delivery.url),
            attempts = delivery.attempts,
            reason = %reason,
            retry_at = ?retry_at,
            given_up = retry_at.is_none(),
            "webhook delivery failed"
        );
        if let Err(error) = store
            .fail_webhook_delivery(&delivery.id, &reason, retry_at)
            .await
        {
            tracing::error!(
                delivery = %delivery.id,
                %error,
                "cannot record a failed webhook delivery"
            );
        }
    }

    /// The next attempt after a failure at `now`, or `None` (give up) once
    /// `give_up_after` has passed since the delivery was queued.
    fn retry_at(&self, delivery: &WebhookDelivery, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if now >= delivery.created_at + self.settings.give_up_after {
            return None;
        }
        let jitter = ring::rand::generate::<[u8; 4]>(&self.random).map_or(0.0, |bytes| {
            f64::from(u32::from_le_bytes(bytes.expose())) / f64::from(u32::MAX)
        });
        let delay = backoff(
            self.settings.retry_base,
            self.settings.retry_cap,
            delivery.attempts,
            jitter,
        );
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
        Some(now + delay)
    }
}

/// `base × 2^(attempts-1)`, at most `cap`, plus `jitter` (0..=1) × 10 %.
pub fn backoff(base: Duration, cap: Duration, attempts: u32, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(31);
    let delay = base.saturating_mul(1u32 << exponent).min(cap);
    delay + delay.mul_f64(jitter.clamp(0.0, 1.0) / 10.0)
}

/// The `Assetpool-Signature` value: `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature_header(secret: &[u8], timestamp: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body.as_bytes());
    let tag = context.sign();
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

/// Whether `url`'s host, when it is an address (as the URL parser reads it:
/// `http://2130706433/` is 127.0.0.1), is one `targets` allows; names are
/// judged by the resolver. An unparsable URL is not sent.
fn literal_host_allowed(url: &str, targets: WebhookTargets) -> bool {
    let Some(host) = reqwest::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .map_or(true, |address| targets.allows(address))
}

/// The host (and port) of a URL, for logs: never its path or query, which may carry tokens.
fn url_host(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|url| {
            url.host_str().map(|host| match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            })
        })
        .unwrap_or_else(|| "(invalid URL)".to_owned())
}

/// A short reason for a failed POST, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut innermost = None;
    while let Some(cause) = source {
        innermost = Some(cause);
        source = cause.source();
    }
    match innermost {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(3600);
        assert_eq!(backoff(base, cap, 1, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(base, cap, 2, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(base, cap, 4, 0.0), Duration::from_secs(80));
        assert_eq!(backoff(base, cap, 20, 0.0), cap);
        assert_eq!(backoff(base, cap, u32::MAX, 0.0), cap);
        assert_eq!(backoff(base, cap, 1, 1.0), Duration::from_secs(11));
        assert_eq!(backoff(base, cap, 0, 0.0), Duration::from_secs(10));
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently
        // with Python's hmac module (and docs/webhooks.md's openssl line).
        assert_eq!(
            signature_header(b"whsec_test", 1_700_000_000, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn hosts_leave_out_paths_and_queries() {
        assert_eq!(
            url_host("https://hooks.example.com/a?token=x"),
            "hooks.example.com"
        );
        assert_eq!(url_host("http://127.0.0.1:9000/x"), "127.0.0.1:9000");
        assert_eq!(url_host("nope"), "(invalid URL)");
    }
}
