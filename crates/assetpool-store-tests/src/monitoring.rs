//! Monitoring storage: key usage series (buckets, addresses, networks, last
//! use), alerts with their webhook outbox, per-key owner webhooks, and the
//! audit log.

use crate::support::{at, new_application, new_key};
use assetpool_core::ids::{AlertId, ApplicationId, KeyId};
use assetpool_core::store::prelude::*;
use assetpool_core::store::{
    AddressSeen, KeyLastUse, KeyWebhook, NewAlert, NewAuditEntry, NewDelivery, Page, StoreError,
    UsageBatch, UsageBucket, UsageDelta, UsageResolution,
};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// The start of a day after the suite's origin, so that minute, hour and day
/// buckets are easy to name.
fn day_start() -> DateTime<Utc> {
    UsageResolution::Day.bucket_start(at(0)) + Duration::days(1)
}

/// `minutes` after [`day_start`].
fn t(minutes: i64) -> DateTime<Utc> {
    day_start() + Duration::minutes(minutes)
}

fn delta(key_id: &KeyId, minute: DateTime<Utc>, outcome: &str, count: u64) -> UsageDelta {
    UsageDelta {
        key_id: key_id.clone(),
        minute,
        outcome: outcome.to_owned(),
        count,
    }
}

fn seen(key_id: &KeyId, address: &str, network: &str, at: DateTime<Utc>) -> AddressSeen {
    AddressSeen {
        key_id: key_id.clone(),
        address: address.to_owned(),
        network: network.to_owned(),
        at,
    }
}

fn bucket(start: DateTime<Utc>, outcome: &str, count: u64) -> UsageBucket {
    UsageBucket {
        start,
        outcome: outcome.to_owned(),
        count,
    }
}

async fn stored_key(store: &dyn Store) -> KeyId {
    let application = new_application(store, at(0)).await;
    new_key(store, &application.id, at(0)).await.id
}

/// Counts added by two flushes sum up in their minute, hour and day buckets;
/// each flush returns the new hour totals of what it touched; series are read
/// per resolution from `since`; unknown keys are skipped.
pub async fn key_usage_adds_up_per_minute_hour_and_day(store: Arc<dyn Store>) {
    let key = stored_key(store.as_ref()).await;
    let first = UsageBatch {
        counts: vec![
            delta(&key, t(5), "2xx", 3),
            delta(&key, t(6), "2xx", 2),
            delta(&key, t(6), "4xx:token_expired", 1),
            delta(&"key_unknown".into(), t(6), "2xx", 7),
        ],
        ..Default::default()
    };
    let written = store.add_key_usage(&first).await.unwrap();
    let mut totals: Vec<(KeyId, DateTime<Utc>, String, u64)> = written
        .hour_totals
        .iter()
        .map(|total| {
            (
                total.key_id.clone(),
                total.hour,
                total.outcome.clone(),
                total.total,
            )
        })
        .collect();
    totals.sort();
    assert_eq!(
        totals,
        vec![
            (key.clone(), t(0), "2xx".to_owned(), 5),
            (key.clone(), t(0), "4xx:token_expired".to_owned(), 1),
        ]
    );

    // A second server's flush adds to the same buckets, and to a new hour.
    let second = UsageBatch {
        counts: vec![delta(&key, t(5), "2xx", 10), delta(&key, t(65), "2xx", 4)],
        ..Default::default()
    };
    let written = store.add_key_usage(&second).await.unwrap();
    let mut totals: Vec<(DateTime<Utc>, u64)> = written
        .hour_totals
        .iter()
        .map(|total| (total.hour, total.total))
        .collect();
    totals.sort();
    assert_eq!(totals, vec![(t(0), 15), (t(60), 4)]);

    assert_series(store.as_ref(), &key).await;

    let unknown = store
        .key_usage(&"key_unknown".into(), UsageResolution::Minute, t(0))
        .await
        .unwrap();
    assert_eq!(unknown, Default::default());
}

/// The series written by [`key_usage_adds_up_per_minute_hour_and_day`].
async fn assert_series(store: &dyn Store, key: &KeyId) {
    let minutes = store
        .key_usage(key, UsageResolution::Minute, t(0))
        .await
        .unwrap();
    assert_eq!(
        minutes.buckets,
        vec![
            bucket(t(5), "2xx", 13),
            bucket(t(6), "2xx", 2),
            bucket(t(6), "4xx:token_expired", 1),
            bucket(t(65), "2xx", 4),
        ]
    );
    let later = store
        .key_usage(key, UsageResolution::Minute, t(6))
        .await
        .unwrap();
    assert_eq!(later.buckets.len(), 3);
    assert_eq!(later.buckets[0].start, t(6));
    let hours = store
        .key_usage(key, UsageResolution::Hour, t(0))
        .await
        .unwrap();
    assert_eq!(
        hours.buckets,
        vec![
            bucket(t(0), "2xx", 15),
            bucket(t(0), "4xx:token_expired", 1),
            bucket(t(60), "2xx", 4),
        ]
    );
    let hours_since = store
        .key_usage(key, UsageResolution::Hour, t(30))
        .await
        .unwrap();
    assert_eq!(hours_since.buckets, vec![bucket(t(60), "2xx", 4)]);
    let days = store
        .key_usage(key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(
        days.buckets,
        vec![
            bucket(t(0), "2xx", 19),
            bucket(t(0), "4xx:token_expired", 1)
        ]
    );
}

/// (key, network, address, previously seen, other networks).
type NetworkRow = (KeyId, String, String, Option<DateTime<Utc>>, u64);

/// Distinct addresses are counted per day; each distinct (key, network) of a
/// flush is returned with when it was last seen before and how many other
/// networks the key had before the flush.
pub async fn key_addresses_and_networks(store: Arc<dyn Store>) {
    let key = stored_key(store.as_ref()).await;
    let other = stored_key(store.as_ref()).await;
    let first = UsageBatch {
        addresses: vec![
            seen(&key, "203.0.113.7", "203.0.113.0/24", t(1)),
            seen(&key, "203.0.113.8", "203.0.113.0/24", t(2)),
            seen(&key, "203.0.113.7", "203.0.113.0/24", t(3)),
            seen(&key, "2001:db8::1", "2001:db8::/48", t(4)),
            seen(&other, "198.51.100.1", "198.51.100.0/24", t(4)),
        ],
        ..Default::default()
    };
    let written = store.add_key_usage(&first).await.unwrap();
    let mut networks: Vec<NetworkRow> = written
        .networks
        .iter()
        .map(|network| {
            (
                network.seen.key_id.clone(),
                network.seen.network.clone(),
                network.seen.address.clone(),
                network.previously_seen,
                network.other_networks,
            )
        })
        .collect();
    networks.sort();
    let mut expected = vec![
        (
            key.clone(),
            "203.0.113.0/24".to_owned(),
            "203.0.113.7".to_owned(),
            None,
            0,
        ),
        (
            key.clone(),
            "2001:db8::/48".to_owned(),
            "2001:db8::1".to_owned(),
            None,
            0,
        ),
        (
            other.clone(),
            "198.51.100.0/24".to_owned(),
            "198.51.100.1".to_owned(),
            None,
            0,
        ),
    ];
    expected.sort();
    assert_eq!(networks, expected);
    // The latest address of a network in the flush is the one reported.
    let latest = written
        .networks
        .iter()
        .find(|network| network.seen.network == "203.0.113.0/24")
        .unwrap();
    assert_eq!(latest.seen.at, t(3));

    second_flush_knows_the_first(store.as_ref(), &key).await;
}

/// The second flush of [`key_addresses_and_networks`].
async fn second_flush_knows_the_first(store: &dyn Store, key: &KeyId) {
    let day = Duration::days(1);
    let second = UsageBatch {
        addresses: vec![
            seen(key, "203.0.113.9", "203.0.113.0/24", t(10) + day),
            seen(key, "192.0.2.1", "192.0.2.0/24", t(11) + day),
            seen(
                &"key_unknown".into(),
                "192.0.2.1",
                "192.0.2.0/24",
                t(11) + day,
            ),
        ],
        ..Default::default()
    };
    let written = store.add_key_usage(&second).await.unwrap();
    assert_eq!(written.networks.len(), 2, "unknown keys are skipped");
    let known = written
        .networks
        .iter()
        .find(|network| network.seen.network == "203.0.113.0/24")
        .unwrap();
    assert_eq!(known.previously_seen, Some(t(3)));
    assert_eq!(known.other_networks, 1);
    let new = written
        .networks
        .iter()
        .find(|network| network.seen.network == "192.0.2.0/24")
        .unwrap();
    assert_eq!(new.previously_seen, None);
    assert_eq!(new.other_networks, 2);

    let usage = store
        .key_usage(key, UsageResolution::Hour, t(600))
        .await
        .unwrap();
    assert_eq!(
        usage.addresses_per_day,
        vec![(day_start(), 3), (day_start() + day, 2)],
        "since is taken from the start of its day"
    );
    let usage = store
        .key_usage(key, UsageResolution::Hour, t(0) + day)
        .await
        .unwrap();
    assert_eq!(usage.addresses_per_day, vec![(day_start() + day, 2)]);
}

/// The newest use wins (across flushes and within one) and updates the key's
/// `last_used_at`; an older use changes neither.
pub async fn key_last_use_keeps_the_newest(store: Arc<dyn Store>) {
    let key = stored_key(store.as_ref()).await;
    let before = store
        .key_usage(&key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(before.last_used_at, None);
    assert_eq!(before.last_address, None);

    let use_at = |at: DateTime<Utc>, address: Option<&str>| KeyLastUse {
        key_id: key.clone(),
        at,
        address: address.map(str::to_owned),
    };
    let batch = UsageBatch {
        last_uses: vec![
            use_at(t(5), Some("203.0.113.5")),
            use_at(t(9), Some("203.0.113.9")),
            use_at(t(7), Some("203.0.113.7")),
            KeyLastUse {
                key_id: "key_unknown".into(),
                at: t(9),
                address: None,
            },
        ],
        ..Default::default()
    };
    store.add_key_usage(&batch).await.unwrap();
    let usage = store
        .key_usage(&key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(usage.last_used_at, Some(t(9)));
    assert_eq!(usage.last_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        store.api_key(&key).await.unwrap().unwrap().last_used_at,
        Some(t(9))
    );

    // An older flush (a slow server) changes nothing.
    let older = UsageBatch {
        last_uses: vec![use_at(t(8), Some("203.0.113.8"))],
        ..Default::default()
    };
    store.add_key_usage(&older).await.unwrap();
    let usage = store
        .key_usage(&key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(usage.last_used_at, Some(t(9)));
    assert_eq!(usage.last_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        store.api_key(&key).await.unwrap().unwrap().last_used_at,
        Some(t(9))
    );

    let newer = UsageBatch {
        last_uses: vec![use_at(t(20), None)],
        ..Default::default()
    };
    store.add_key_usage(&newer).await.unwrap();
    let usage = store
        .key_usage(&key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(usage.last_used_at, Some(t(20)));
    assert_eq!(usage.last_address, None);
    assert_eq!(
        store.api_key(&key).await.unwrap().unwrap().last_used_at,
        Some(t(20))
    );

    // A use recorded the older way is still reported.
    let other = stored_key(store.as_ref()).await;
    store
        .record_api_key_use(&[(other.clone(), t(30))])
        .await
        .unwrap();
    let usage = store
        .key_usage(&other, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(usage.last_used_at, Some(t(30)));
}

/// Concurrent flushes from several servers, touching the same keys in any
/// order, all succeed (no deadlock) and add up.
pub async fn concurrent_flushes_add_up(store: Arc<dyn Store>) {
    let first = stored_key(store.as_ref()).await;
    let second = stored_key(store.as_ref()).await;
    let flushes = (0..8_i64).map(|index| {
        let store = store.clone();
        let mut keys = [first.clone(), second.clone()];
        if index % 2 == 1 {
            keys.reverse();
        }
        tokio::spawn(async move {
            let batch = UsageBatch {
                counts: keys
                    .iter()
                    .flat_map(|key| [delta(key, t(1), "2xx", 1), delta(key, t(2), "5xx", 2)])
                    .collect(),
                addresses: keys
                    .iter()
                    .map(|key| {
                        seen(
                            key,
                            &format!("203.0.113.{index}"),
                            "203.0.113.0/24",
                            t(index),
                        )
                    })
                    .collect(),
                last_uses: keys
                    .iter()
                    .map(|key| KeyLastUse {
                        key_id: key.clone(),
                        at: t(index),
                        address: None,
                    })
                    .collect(),
            };
            store.add_key_usage(&batch).await.unwrap()
        })
    });
    for flush in flushes.collect::<Vec<_>>() {
        flush.await.unwrap();
    }
    for key in [&first, &second] {
        let usage = store
            .key_usage(key, UsageResolution::Day, t(0))
            .await
            .unwrap();
        assert_eq!(
            usage.buckets,
            vec![bucket(t(0), "2xx", 8), bucket(t(0), "5xx", 16)]
        );
        assert_eq!(usage.addresses_per_day, vec![(day_start(), 8)]);
        assert_eq!(usage.last_used_at, Some(t(7)));
    }
}

/// Pruning deletes minute buckets after 48 hours, hour buckets and networks
/// after 90 days, day buckets and addresses after 2 years (the sums of every
/// key's usage with their buckets), and nothing newer.
pub async fn prune_key_usage_keeps_recent_rows(store: Arc<dyn Store>) {
    let key = stored_key(store.as_ref()).await;
    let batch = UsageBatch {
        counts: vec![delta(&key, t(0), "2xx", 1)],
        addresses: vec![seen(&key, "203.0.113.7", "203.0.113.0/24", t(0))],
        ..Default::default()
    };
    store.add_key_usage(&batch).await.unwrap();
    let count = |resolution| {
        let store = store.clone();
        let key = key.clone();
        async move {
            store
                .key_usage(&key, resolution, t(0) - Duration::days(1))
                .await
                .unwrap()
                .buckets
                .len()
        }
    };
    let networks_before = |store: Arc<dyn Store>, key: KeyId, at: DateTime<Utc>| async move {
        let batch = UsageBatch {
            addresses: vec![seen(&key, "203.0.113.8", "203.0.113.0/24", at)],
            ..Default::default()
        };
        // Reading what is known of the network writes it again: only used last.
        store.add_key_usage(&batch).await.unwrap().networks[0].previously_seen
    };

    // Nothing is old enough yet.
    assert_eq!(
        store
            .prune_key_usage(t(0) + Duration::hours(47))
            .await
            .unwrap(),
        0
    );
    assert_eq!(count(UsageResolution::Minute).await, 1);

    // Minutes go after 48 hours (the bucket and the sum of every key's).
    assert_eq!(
        store
            .prune_key_usage(t(1) + Duration::hours(48))
            .await
            .unwrap(),
        2
    );
    assert_eq!(count(UsageResolution::Minute).await, 0);
    assert_eq!(count(UsageResolution::Hour).await, 1);

    // Hours and networks after 90 days.
    assert_eq!(
        store
            .prune_key_usage(t(1) + Duration::days(90))
            .await
            .unwrap(),
        3
    );
    assert_eq!(count(UsageResolution::Hour).await, 0);
    assert_eq!(count(UsageResolution::Day).await, 1);
    let usage = store
        .key_usage(&key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert_eq!(usage.addresses_per_day, vec![(day_start(), 1)]);

    // Days and addresses after 2 years.
    assert_eq!(
        store
            .prune_key_usage(t(1) + Duration::days(730))
            .await
            .unwrap(),
        3
    );
    assert_eq!(count(UsageResolution::Day).await, 0);
    let usage = store
        .key_usage(&key, UsageResolution::Day, t(0))
        .await
        .unwrap();
    assert!(usage.addresses_per_day.is_empty());
    assert_eq!(
        networks_before(store.clone(), key.clone(), t(2) + Duration::days(730)).await,
        None,
        "the network was pruned"
    );
}

fn new_alert(rule: &str, subject: &str, at: DateTime<Utc>, deliveries: usize) -> NewAlert {
    let id = format!("alr_{}", Uuid::new_v4().simple());
    NewAlert {
        deliveries: (0..deliveries)
            .map(|index| NewDelivery {
                id: format!("dlv_{}", Uuid::new_v4().simple()),
                url: format!("https://hooks.example.com/{index}"),
                secret_ref: "global".to_owned(),
                payload: format!("{{\"alert\":\"{id}\"}}"),
            })
            .collect(),
        id: id.into(),
        rule: rule.to_owned(),
        subject: subject.to_owned(),
        api_key_id: Some("key_1".into()),
        account: None,
        evidence: format!("{{\"at\":\"{at}\"}}"),
        at,
        episode_since: at - Duration::minutes(60),
    }
}

fn page(before: Option<i64>, limit: u32) -> Page {
    Page { before, limit }
}

/// A raise creates an alert with its deliveries; raises within the episode
/// update it (no new deliveries); after the episode or an acknowledgement a
/// new alert is created.
pub async fn raise_alert_updates_the_open_episode(store: Arc<dyn Store>) {
    let first = new_alert("revoked_key_used", "key:key_1", t(0), 2);
    let raised = store.raise_alert(&first).await.unwrap();
    assert!(raised.created);
    assert_eq!(raised.alert.id, first.id);
    assert_eq!(raised.alert.rule, "revoked_key_used");
    assert_eq!(raised.alert.subject, "key:key_1");
    assert_eq!(
        raised.alert.api_key_id.as_ref().map(|id| id.as_str()),
        Some("key_1")
    );
    assert_eq!(raised.alert.account, None);
    assert_eq!(raised.alert.first_seen, t(0));
    assert_eq!(raised.alert.last_seen, t(0));
    assert_eq!(raised.alert.occurrences, 1);
    assert_eq!(raised.alert.acked_at, None);
    assert_eq!(store.webhook_backlog().await.unwrap(), 2);
    let original = raised.alert;

    // Within the episode: updated, no deliveries.
    let again = new_alert("revoked_key_used", "key:key_1", t(30), 2);
    let raised = store.raise_alert(&again).await.unwrap();
    assert!(!raised.created);
    assert_eq!(raised.alert.id, first.id);
    assert_eq!(raised.alert.seq, original.seq);
    assert_eq!(raised.alert.occurrences, 2);
    assert_eq!(raised.alert.first_seen, t(0));
    assert_eq!(raised.alert.last_seen, t(30));
    assert_eq!(raised.alert.evidence, again.evidence);
    assert_eq!(store.webhook_backlog().await.unwrap(), 2);
    assert_eq!(
        store.alert(&first.id).await.unwrap(),
        Some(raised.alert.clone())
    );
    // A late trigger does not move last_seen back.
    let late = NewAlert {
        episode_since: t(0),
        ..new_alert("revoked_key_used", "key:key_1", t(20), 0)
    };
    let raised = store.raise_alert(&late).await.unwrap();
    assert!(!raised.created);
    assert_eq!(raised.alert.occurrences, 3);
    assert_eq!(raised.alert.last_seen, t(30));

    // Another subject or rule is another episode.
    let other = store
        .raise_alert(&new_alert("revoked_key_used", "key:key_2", t(31), 0))
        .await
        .unwrap();
    assert!(other.created);
    let other_rule = store
        .raise_alert(&new_alert("login_burst", "key:key_1", t(31), 0))
        .await
        .unwrap();
    assert!(other_rule.created);

    // After the episode: a new alert.
    let after = new_alert("revoked_key_used", "key:key_1", t(200), 1);
    let raised = store.raise_alert(&after).await.unwrap();
    assert!(raised.created);
    assert_eq!(raised.alert.id, after.id);
    assert!(raised.alert.seq > original.seq);
    assert_eq!(store.webhook_backlog().await.unwrap(), 3);

    // After an acknowledgement: a new alert.
    store
        .ack_alert(&after.id, "admin:a@example.com", t(201))
        .await
        .unwrap();
    let acked_then = new_alert("revoked_key_used", "key:key_1", t(202), 0);
    let raised = store.raise_alert(&acked_then).await.unwrap();
    assert!(raised.created);
    assert_eq!(raised.alert.id, acked_then.id);
    assert_eq!(
        store.alert(&after.id).await.unwrap().unwrap().occurrences,
        1
    );
    assert_eq!(store.alert(&"alr_unknown".into()).await.unwrap(), None);
}

/// Concurrent raises of one episode create one alert counting every raise.
pub async fn concurrent_raises_create_one_alert(store: Arc<dyn Store>) {
    let raises = (0..8).map(|index| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .raise_alert(&new_alert("new_network", "key:key_9", t(index), 1))
                .await
                .unwrap()
        })
    });
    let mut created = 0;
    for raise in raises.collect::<Vec<_>>() {
        if raise.await.unwrap().created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let alerts = store.list_alerts(None, page(None, 100)).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].occurrences, 8);
    assert_eq!(store.webhook_backlog().await.unwrap(), 1);
}

/// Alerts are listed newest first, in pages, optionally since a time;
/// acknowledging twice keeps the first; unknown alerts are `NotFound`.
pub async fn alerts_are_listed_and_acknowledged(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for index in 0..5 {
        let alert = new_alert("rule", &format!("key:key_{index}"), t(index * 10), 0);
        store.raise_alert(&alert).await.unwrap();
        ids.push(alert.id);
    }
    let all = store.list_alerts(None, page(None, 100)).await.unwrap();
    let listed: Vec<&str> = all.iter().map(|alert| alert.id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(AlertId::as_str).collect();
    assert_eq!(listed, newest_first);
    assert!(all.windows(2).all(|pair| pair[0].seq > pair[1].seq));

    let first_page = store.list_alerts(None, page(None, 2)).await.unwrap();
    assert_eq!(first_page.len(), 2);
    assert_eq!(first_page[0].id, ids[4]);
    let second_page = store
        .list_alerts(None, page(Some(first_page[1].seq), 2))
        .await
        .unwrap();
    let second: Vec<&str> = second_page.iter().map(|alert| alert.id.as_str()).collect();
    assert_eq!(second, vec![ids[2].as_str(), ids[1].as_str()]);

    let since = store
        .list_alerts(Some(t(20)), page(None, 100))
        .await
        .unwrap();
    let since: Vec<&str> = since.iter().map(|alert| alert.id.as_str()).collect();
    assert_eq!(
        since,
        vec![ids[4].as_str(), ids[3].as_str(), ids[2].as_str()]
    );
    let since_paged = store
        .list_alerts(Some(t(20)), page(Some(all[1].seq), 100))
        .await
        .unwrap();
    assert_eq!(since_paged.len(), 1);
    assert_eq!(since_paged[0].id, ids[2]);

    let acked = store
        .ack_alert(&ids[0], "admin:a@example.com", t(100))
        .await
        .unwrap();
    assert_eq!(acked.acked_at, Some(t(100)));
    assert_eq!(acked.acked_by.as_deref(), Some("admin:a@example.com"));
    let again = store.ack_alert(&ids[0], "cli:root", t(200)).await.unwrap();
    assert_eq!(again, acked);
    assert_eq!(store.alert(&ids[0]).await.unwrap(), Some(acked));
    assert!(matches!(
        store
            .ack_alert(&"alr_unknown".into(), "cli:root", t(1))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Deliveries are claimed oldest first with a lease (not claimed again before
/// it ends, claimed again after), counted per attempt, completed, retried or
/// given up; the backlog counts what is neither delivered nor given up.
pub async fn webhook_deliveries_are_claimed_with_a_lease(store: Arc<dyn Store>) {
    let first = new_alert("rule", "key:key_1", t(0), 2);
    let second = new_alert("rule", "key:key_2", t(1), 1);
    store.raise_alert(&first).await.unwrap();
    store.raise_alert(&second).await.unwrap();
    assert_eq!(store.webhook_backlog().await.unwrap(), 3);

    // Not due before their creation.
    assert!(store
        .claim_webhook_deliveries(t(0) - Duration::seconds(1), t(5), 10)
        .await
        .unwrap()
        .is_empty());

    let claimed = store.claim_webhook_deliveries(t(2), t(3), 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|delivery| delivery.alert_id == first.id));
    assert!(claimed.iter().all(|delivery| delivery.attempts == 1));
    assert!(claimed.iter().all(|delivery| delivery.created_at == t(0)));
    let mut claimed_ids: Vec<&str> = claimed
        .iter()
        .map(|delivery| delivery.id.as_str())
        .collect();
    claimed_ids.sort_unstable();
    let mut first_ids: Vec<&str> = first.deliveries.iter().map(|d| d.id.as_str()).collect();
    first_ids.sort_unstable();
    assert_eq!(claimed_ids, first_ids);
    let sent = first
        .deliveries
        .iter()
        .find(|delivery| delivery.id == claimed[0].id)
        .unwrap();
    assert_eq!(claimed[0].url, sent.url);
    assert_eq!(claimed[0].secret_ref, sent.secret_ref);
    assert_eq!(claimed[0].payload, sent.payload);

    // Leased: only the other one is due.
    let rest = store
        .claim_webhook_deliveries(t(2), t(3), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].alert_id, second.id);
    assert!(store
        .claim_webhook_deliveries(t(2), t(3), 10)
        .await
        .unwrap()
        .is_empty());

    // One delivered, one retried later, one given up.
    store
        .complete_webhook_delivery(&claimed[0].id, t(2))
        .await
        .unwrap();
    store
        .fail_webhook_delivery(&claimed[1].id, "connection refused", Some(t(10)))
        .await
        .unwrap();
    let long_error = "x".repeat(2_000);
    store
        .fail_webhook_delivery(&rest[0].id, &long_error, None)
        .await
        .unwrap();
    assert_eq!(store.webhook_backlog().await.unwrap(), 1);

    retried_delivery_comes_back(store.as_ref(), &claimed[1].id).await;
}

/// The end of [`webhook_deliveries_are_claimed_with_a_lease`]: `retried`
/// was failed with a retry at `t(10)`, everything else is done.
async fn retried_delivery_comes_back(store: &dyn Store, retried_id: &str) {
    // After the first lease ended, only the retried one comes back, not before its retry time.
    assert!(store
        .claim_webhook_deliveries(t(5), t(6), 10)
        .await
        .unwrap()
        .is_empty());
    let retried = store
        .claim_webhook_deliveries(t(10), t(11), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, retried_id);
    assert_eq!(retried[0].attempts, 2);

    // A lease that ends without an answer makes the delivery due again.
    let again = store
        .claim_webhook_deliveries(t(11), t(12), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 3);
    store
        .complete_webhook_delivery(&again[0].id, t(11))
        .await
        .unwrap();
    assert_eq!(store.webhook_backlog().await.unwrap(), 0);
    assert!(store
        .claim_webhook_deliveries(t(100), t(101), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.complete_webhook_delivery("dlv_unknown", t(1)).await,
        Err(StoreError::NotFound)
    ));
}

/// A key's owner webhook is set, replaced, read and removed.
pub async fn key_webhooks_are_set_and_removed(store: Arc<dyn Store>) {
    let key = stored_key(store.as_ref()).await;
    assert_eq!(store.key_webhook(&key).await.unwrap(), None);
    let webhook = KeyWebhook {
        url: "https://owner.example.com/hook".to_owned(),
        sealed_secret: "plain:c2VjcmV0".to_owned(),
    };
    store.set_key_webhook(&key, Some(&webhook)).await.unwrap();
    assert_eq!(store.key_webhook(&key).await.unwrap(), Some(webhook));
    let replaced = KeyWebhook {
        url: "https://owner.example.com/other".to_owned(),
        sealed_secret: "plain:b3RoZXI=".to_owned(),
    };
    store.set_key_webhook(&key, Some(&replaced)).await.unwrap();
    assert_eq!(
        store.key_webhook(&key).await.unwrap(),
        Some(replaced.clone())
    );
    store.set_key_webhook(&key, None).await.unwrap();
    assert_eq!(store.key_webhook(&key).await.unwrap(), None);
    // Removing twice is fine; setting one on an unknown key is not.
    store.set_key_webhook(&key, None).await.unwrap();
    assert!(matches!(
        store
            .set_key_webhook(&"key_unknown".into(), Some(&replaced))
            .await,
        Err(StoreError::NotFound)
    ));
}

fn audit_entry(index: i64) -> NewAuditEntry {
    NewAuditEntry {
        at: t(index),
        actor: "admin:a@example.com".to_owned(),
        actor_id: Some("usr_1".to_owned()),
        action: "key.revoke".to_owned(),
        target: format!("key_{index}"),
        outcome: if index % 2 == 0 { "success" } else { "failure" }.to_owned(),
        error: (index % 2 == 1).then(|| "not_found".to_owned()),
        detail: format!("{{\"index\":{index}}}"),
    }
}

/// Audit entries get increasing positions and are listed newest first, in pages.
pub async fn audit_log_is_appended_and_listed(store: Arc<dyn Store>) {
    assert!(store.list_audit(page(None, 10)).await.unwrap().is_empty());
    let mut seqs = Vec::new();
    for index in 0..5 {
        seqs.push(store.append_audit(&audit_entry(index)).await.unwrap());
    }
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]));
    let all = store.list_audit(page(None, 100)).await.unwrap();
    assert_eq!(all.len(), 5);
    for (record, index) in all.iter().zip((0..5).rev()) {
        assert_eq!(record.seq, seqs[usize::try_from(index).unwrap()]);
        assert_eq!(record.entry, audit_entry(index));
    }
    let first_page = store.list_audit(page(None, 2)).await.unwrap();
    assert_eq!(first_page.len(), 2);
    assert_eq!(first_page[0].seq, seqs[4]);
    let next = store
        .list_audit(page(Some(first_page[1].seq), 10))
        .await
        .unwrap();
    let next: Vec<i64> = next.iter().map(|record| record.seq).collect();
    assert_eq!(next, vec![seqs[2], seqs[1], seqs[0]]);
}

/// The audit log is append-only in the database itself: raw SQL (`run`, on
/// a connection of the test's own, answering the database's error text)
/// cannot change or delete an entry; `more` are further statements the
/// backend refuses (PostgreSQL: `TRUNCATE`).
pub async fn audit_entries_cannot_be_changed_or_deleted<F, Fut>(
    store: Arc<dyn Store>,
    run: F,
    more: &[&str],
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let entry = audit_entry(1);
    let seq = store.append_audit(&entry).await.unwrap();
    let mut statements = vec![
        format!("UPDATE audit_log SET actor = 'someone else' WHERE seq = {seq}"),
        "DELETE FROM audit_log".to_owned(),
    ];
    statements.extend(more.iter().map(|statement| (*statement).to_owned()));
    for statement in statements {
        let error = run(statement.clone()).await.unwrap_err();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    let listed = store.list_audit(page(None, 10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].entry, entry);
}

/// An alert about `key` with one delivery to its owner webhook.
fn key_alert(key: &KeyId, rule: &str, at: DateTime<Utc>) -> NewAlert {
    let mut alert = new_alert(rule, &format!("key:{key}"), at, 1);
    alert.api_key_id = Some(key.clone());
    alert.deliveries[0].secret_ref = format!("key:{key}");
    alert.deliveries[0].url = "https://owner.example.com/hook".to_owned();
    alert
}

/// The console's owner view: an application's alerts are those about its
/// keys (newest first, paged), its keys' owner webhooks are listed with
/// their URL, and a key's deliveries newest first with their state.
pub async fn application_alerts_webhooks_and_deliveries(store: Arc<dyn Store>) {
    let mine = new_application(store.as_ref(), at(0)).await;
    let theirs = new_application(store.as_ref(), at(0)).await;
    let first = new_key(store.as_ref(), &mine.id, at(0)).await.id;
    let second = new_key(store.as_ref(), &mine.id, at(1)).await.id;
    let other = new_key(store.as_ref(), &theirs.id, at(0)).await.id;
    let raised = [
        key_alert(&first, "revoked_key_used", t(0)),
        key_alert(&other, "revoked_key_used", t(1)),
        key_alert(&second, "rate_spike", t(2)),
        key_alert(&first, "new_network", t(3)),
    ];
    for alert in &raised {
        store.raise_alert(alert).await.unwrap();
    }
    // An alert about an account only belongs to no application.
    let mut account = new_alert("failed_logins", "account:a@example.com", t(4), 0);
    account.api_key_id = None;
    store.raise_alert(&account).await.unwrap();

    let listed = store
        .application_alerts(&mine.id, page(None, 10))
        .await
        .unwrap();
    let ids: Vec<&AlertId> = listed.iter().map(|alert| &alert.id).collect();
    assert_eq!(ids, [&raised[3].id, &raised[2].id, &raised[0].id]);
    let second_page = store
        .application_alerts(&mine.id, page(Some(listed[1].seq), 10))
        .await
        .unwrap();
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].id, raised[0].id);
    assert_eq!(
        store
            .application_alerts(&mine.id, page(None, 1))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .application_alerts(&"app_unknown".into(), page(None, 10))
        .await
        .unwrap()
        .is_empty());

    application_webhooks_are_listed(store.as_ref(), &mine.id, &first, &other).await;
    deliveries_are_listed_newest_first(store.as_ref(), &first, &raised).await;
}

/// The end of [`application_alerts_webhooks_and_deliveries`]: webhooks.
async fn application_webhooks_are_listed(
    store: &dyn Store,
    application: &ApplicationId,
    first: &KeyId,
    other: &KeyId,
) {
    assert!(store
        .application_key_webhooks(application, 10)
        .await
        .unwrap()
        .is_empty());
    for key in [first, other] {
        let webhook = KeyWebhook {
            url: format!("https://owner.example.com/{key}"),
            sealed_secret: "plain:c2VjcmV0".to_owned(),
        };
        store.set_key_webhook(key, Some(&webhook)).await.unwrap();
    }
    assert_eq!(
        store
            .application_key_webhooks(application, 10)
            .await
            .unwrap(),
        [(first.clone(), format!("https://owner.example.com/{first}"))]
    );
}

/// The end of [`application_alerts_webhooks_and_deliveries`]: deliveries.
async fn deliveries_are_listed_newest_first(store: &dyn Store, first: &KeyId, raised: &[NewAlert]) {
    let latest = &raised[3].deliveries[0].id;
    let earliest = &raised[0].deliveries[0].id;
    let claimed = store
        .claim_webhook_deliveries(t(10), t(11), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    store
        .complete_webhook_delivery(earliest, t(10))
        .await
        .unwrap();
    store
        .fail_webhook_delivery(latest, "HTTP 500", Some(t(20)))
        .await
        .unwrap();
    let deliveries = store.key_webhook_deliveries(first, 10).await.unwrap();
    let ids: Vec<&str> = deliveries
        .iter()
        .map(|delivery| delivery.id.as_str())
        .collect();
    assert_eq!(ids, [latest.as_str(), earliest.as_str()]);
    let failed = &deliveries[0];
    assert_eq!(failed.alert_id, raised[3].id);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.created_at, t(3));
    assert_eq!(failed.next_attempt_at, t(20));
    assert_eq!((failed.delivered_at, failed.given_up_at), (None, None));
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 500"));
    let delivered = &deliveries[1];
    assert_eq!(delivered.delivered_at, Some(t(10)));
    assert_eq!(delivered.last_error, None);
    let newest = store.key_webhook_deliveries(first, 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].id, *latest);
    assert!(store
        .key_webhook_deliveries(&"key_unknown".into(), 10)
        .await
        .unwrap()
        .is_empty());
}

/// The overview's totals: every key's counts summed per bucket and outcome,
/// from `since`, for one resolution.
pub async fn usage_totals_sum_every_key(store: Arc<dyn Store>) {
    let first = stored_key(store.as_ref()).await;
    let second = stored_key(store.as_ref()).await;
    assert!(store
        .usage_totals(UsageResolution::Hour, t(0))
        .await
        .unwrap()
        .is_empty());
    let batch = UsageBatch {
        counts: vec![
            delta(&first, t(5), "2xx", 3),
            delta(&second, t(5), "2xx", 4),
            delta(&second, t(6), "5xx", 1),
            delta(&first, t(70), "4xx:token_expired", 2),
            delta(&"key_unknown".into(), t(5), "2xx", 100),
        ],
        ..Default::default()
    };
    let written = store.add_key_usage(&batch).await.unwrap();
    // The unknown key's counts are skipped, the others' written.
    let mut hours: Vec<_> = written
        .hour_totals
        .iter()
        .map(|total| (total.key_id.as_str(), total.outcome.as_str(), total.total))
        .collect();
    hours.sort_unstable();
    let mut expected = vec![
        (first.as_str(), "2xx", 3),
        (first.as_str(), "4xx:token_expired", 2),
        (second.as_str(), "2xx", 4),
        (second.as_str(), "5xx", 1),
    ];
    expected.sort_unstable();
    assert_eq!(hours, expected);
    assert_eq!(
        store
            .usage_totals(UsageResolution::Minute, t(0))
            .await
            .unwrap(),
        [
            bucket(t(5), "2xx", 7),
            bucket(t(6), "5xx", 1),
            bucket(t(70), "4xx:token_expired", 2),
        ]
    );
    assert_eq!(
        store
            .usage_totals(UsageResolution::Minute, t(6))
            .await
            .unwrap(),
        [
            bucket(t(6), "5xx", 1),
            bucket(t(70), "4xx:token_expired", 2)
        ]
    );
    assert_eq!(
        store
            .usage_totals(UsageResolution::Hour, t(0))
            .await
            .unwrap(),
        [
            bucket(t(0), "2xx", 7),
            bucket(t(0), "5xx", 1),
            bucket(t(60), "4xx:token_expired", 2),
        ]
    );
    assert_eq!(
        store
            .usage_totals(UsageResolution::Day, t(0))
            .await
            .unwrap(),
        [
            bucket(t(0), "2xx", 7),
            bucket(t(0), "4xx:token_expired", 2),
            bucket(t(0), "5xx", 1),
        ]
    );
    sums_follow_flushes_and_pruning(store.as_ref(), &second).await;
}

/// The end of [`usage_totals_sum_every_key`]: a second flush adds to the
/// sums; pruning keeps them as long as the buckets they sum.
async fn sums_follow_flushes_and_pruning(store: &dyn Store, second: &KeyId) {
    let again = UsageBatch {
        counts: vec![delta(second, t(5), "2xx", 1)],
        ..Default::default()
    };
    store.add_key_usage(&again).await.unwrap();
    assert_eq!(
        store
            .usage_totals(UsageResolution::Minute, t(5))
            .await
            .unwrap()[0],
        bucket(t(5), "2xx", 8)
    );
    store
        .prune_key_usage(t(0) + Duration::hours(50))
        .await
        .unwrap();
    assert!(store
        .usage_totals(UsageResolution::Minute, t(0))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .usage_totals(UsageResolution::Hour, t(0))
            .await
            .unwrap()
            .len(),
        3
    );
}
