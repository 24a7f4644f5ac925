//! No user enumeration by timing: unknown user, wrong password, disabled
//! user and a user a members-only application does not admit answer alike,
//! in the same time. A test target of its own, so that no
//! other test loads the machine while it measures.

// Test code: a failed expectation is a test failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use assetpool_core::ids::ApplicationId;
use assetpool_core::{ApplicationRole, Environment};
use helpers::{Backend, TestApp, PASSWORD};
use std::time::{Duration, Instant};

const WRONG: &str = "not the password, but long";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    (samples[samples.len() / 2 - 1] + samples[samples.len() / 2]) / 2
}

/// Unknown user, wrong password, disabled user and an outsider of the key's
/// members-only application (with the right password): the same status,
/// the same body, and the same time (a real Argon2 verification each;
/// medians of 20 logins within 20% of each other).
#[tokio::test]
async fn failed_logins_look_and_take_the_same() {
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        // Measure the password check, not the throttle.
        settings.throttle.per_pair = 10_000;
        settings.throttle.per_address = 10_000;
        settings.throttle.per_account = 10_000;
    })
    .await;
    let application = app.admin.create_application("shop", true).await.unwrap();
    let application = ApplicationId::from(application.id);
    let key = app
        .create_key_in(Environment::Production, Some(&application))
        .await;
    app.create_user("present@example.com").await;
    app.create_user("disabled@example.com").await;
    app.create_user("outsider@example.com").await;
    for member in ["present@example.com", "disabled@example.com"] {
        app.admin
            .add_application_member(&application, member, ApplicationRole::Member)
            .await
            .unwrap();
    }
    app.admin
        .set_user_disabled("disabled@example.com", true)
        .await
        .unwrap();
    let cases = [
        ("nobody@example.com", PASSWORD),
        ("present@example.com", WRONG),
        ("disabled@example.com", PASSWORD),
        ("outsider@example.com", PASSWORD),
    ];
    // Warm up connections and caches.
    for (email, password) in cases {
        app.login(&key.key, email, password).await;
    }
    let mut timings: [Vec<Duration>; 4] = Default::default();
    let mut bodies: [Option<(u16, String)>; 4] = Default::default();
    for round in 0..20 {
        // Interleaved, so that machine noise falls on every case alike, and
        // rotated by one each round, so that each case takes every place in
        // the round equally often: noise that follows the place (every other
        // request landing on a busier hashing thread or core) cannot fall on
        // some cases only.
        for place in 0..cases.len() {
            let index = (place + round) % cases.len();
            let (email, password) = cases[index];
            let started = Instant::now();
            let response = app.login(&key.key, email, password).await;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            timings[index].push(started.elapsed());
            let seen = (status, body);
            match &bodies[index] {
                Some(previous) => assert_eq!(previous, &seen),
                None => bodies[index] = Some(seen),
            }
        }
    }
    assert_eq!(bodies[0], bodies[1], "unknown user vs wrong password");
    assert_eq!(bodies[0], bodies[2], "unknown user vs disabled user");
    assert_eq!(bodies[0], bodies[3], "unknown user vs outsider");
    assert_eq!(bodies[0].as_ref().unwrap().0, 401);
    let medians: Vec<Duration> = timings.into_iter().map(median).collect();
    eprintln!(
        "median of 20 failed logins: unknown user {:?}, wrong password {:?}, disabled user {:?}, outsider {:?}",
        medians[0], medians[1], medians[2], medians[3]
    );
    let fastest = medians.iter().min().unwrap().as_secs_f64();
    let slowest = medians.iter().max().unwrap().as_secs_f64();
    assert!(
        slowest <= fastest * 1.2,
        "medians differ by more than 20%: unknown {:?}, wrong password {:?}, disabled {:?}, outsider {:?}",
        medians[0],
        medians[1],
        medians[2],
        medians[3]
    );
}
