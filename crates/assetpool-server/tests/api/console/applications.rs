//! The console's applications, owner view and overview, on both backends:
//! admins create applications and manage their members (audited as the
//! signed-in admin, bad input a 400 page, never a 500); owners see their
//! application's alerts (read-only) and its keys' owner webhooks with their
//! deliveries, never a secret nor another application's; the overview
//! charts the usage of every key beside the open alerts.

use super::{assert_redirected_to_sign_in, create_admin, Browser, ADMIN, OWNER};
use crate::backend_tests;
use crate::helpers::TestApp;
use assetpool_core::alerts::{AlertRule, Trigger};
use assetpool_core::ids::{AlertId, ApplicationId, KeyId};
use assetpool_core::store::{UsageBatch, UsageDelta, UsageResolution};
use assetpool_core::{ApplicationRole, Environment};
use reqwest::header::LOCATION;
use secrecy::ExposeSecret;

/// Raises `rule` about `key` as the request path would.
async fn raise(app: &TestApp, key: &KeyId, rule: AlertRule) -> AlertId {
    let service = &app.state.service;
    let trigger = Trigger::for_key(
        rule,
        key,
        serde_json::json!({"address": "203.0.113.7"}),
        service.clock().now(),
    );
    service
        .alerts()
        .raise(service.store().as_ref(), trigger)
        .await
        .unwrap()
        .alert
        .id
}

/// The application created by the form's answer (a 303 to its page).
fn created_application(response: &reqwest::Response) -> ApplicationId {
    assert_eq!(response.status(), 303);
    let location = response.headers()[LOCATION].to_str().unwrap();
    let id = location.strip_prefix("/console/applications/").unwrap();
    ApplicationId::from(id)
}

async fn members(app: &TestApp, id: &ApplicationId) -> Vec<(String, String)> {
    app.admin
        .application(id)
        .await
        .unwrap()
        .members
        .iter()
        .map(|member| (member.email.clone(), member.role.as_str().to_owned()))
        .collect()
}

backend_tests! {
    async fn console_admins_create_applications_and_manage_members(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        app.create_user(OWNER).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let list = browser.get("/console/applications").await.text().await.unwrap();
        assert!(list.contains("action=\"/console/applications\""), "the creation form");
        assert!(list.contains("<label for=\"application-name\">"));
        let created = browser
            .submit(
                "/console/applications",
                "/console/applications",
                &[("name", "Shop"), ("members_only", "on")],
            )
            .await;
        let id = created_application(&created);
        let shown = app.admin.application(&id).await.unwrap();
        assert_eq!((shown.name.as_str(), shown.members_only), ("Shop", true));
        let page_path = format!("/console/applications/{id}");
        let members_path = format!("{page_path}/members");
        let page = browser.get(&page_path).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("Application Shop") && html.contains("No members."));
        assert!(html.contains("<label for=\"member-email\">"));

        let added = browser
            .submit(&page_path, &members_path, &[("email", OWNER), ("role", "owner")])
            .await;
        assert_eq!(added.status(), 303);
        assert_eq!(added.headers()[LOCATION].to_str().unwrap(), page_path);
        assert_eq!(members(&app, &id).await, [(OWNER.to_owned(), "owner".to_owned())]);
        let html = browser.get(&page_path).await.text().await.unwrap();
        assert!(html.contains(&format!("aria-label=\"Role of {OWNER}\"")), "{html}");
        let changed = browser
            .submit(&page_path, &members_path, &[("email", OWNER), ("role", "member")])
            .await;
        assert_eq!(changed.status(), 303);
        assert_eq!(members(&app, &id).await, [(OWNER.to_owned(), "member".to_owned())]);
        let removed = browser
            .submit(&page_path, &format!("{members_path}/remove"), &[("email", OWNER)])
            .await;
        assert_eq!(removed.status(), 303);
        assert!(members(&app, &id).await.is_empty());

        let audit = app.admin.list_audit(None, 50).await.unwrap();
        for action in [
            "application.create",
            "application.add_member",
            "application.remove_member",
        ] {
            assert!(
                audit.items.iter().any(|entry| entry.action == action
                    && entry.actor == format!("admin:{ADMIN}")
                    && entry.target == id.as_str()),
                "{action} audited as the admin"
            );
        }
    }

    async fn console_bad_application_and_member_input_is_refused_with_a_page(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        app.create_user(OWNER).await;
        let key = app.create_key(Environment::Production).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let list = "/console/applications";
        let long_name = "x".repeat(201);
        for fields in [
            vec![],
            vec![("name", "   ")],
            vec![("name", long_name.as_str())],
            vec![("name", "tab\tin name")],
        ] {
            let refused = browser.submit(list, list, &fields).await;
            assert_eq!(refused.status(), 400, "{fields:?}");
        }
        assert_eq!(app.admin.list_applications(&assetpool_core::store::CreationPage::all()).await.unwrap().len(), 1);

        let page = format!("/console/applications/{}", key.application);
        let members_path = format!("{page}/members");
        for (fields, status) in [
            (vec![("email", OWNER), ("role", "king")], 400),
            (vec![("email", OWNER)], 400),
            (vec![("role", "owner")], 400),
            (vec![("email", "nobody@example.com"), ("role", "owner")], 404),
        ] {
            let refused = browser.submit(&page, &members_path, &fields).await;
            assert_eq!(refused.status(), status, "{fields:?}");
        }
        let remove = format!("{members_path}/remove");
        assert_eq!(browser.submit(&page, &remove, &[]).await.status(), 400);
        assert_eq!(browser.submit(&page, &remove, &[("email", OWNER)]).await.status(), 404);
        let unknown = "/console/applications/app_unknown/members";
        let refused = browser
            .submit(&page, unknown, &[("email", OWNER), ("role", "owner")])
            .await;
        assert_eq!(refused.status(), 404);
        assert!(members(&app, &key.application).await.is_empty());

        // Owners of the application cannot change its members.
        app.admin
            .add_application_member(&key.application, OWNER, ApplicationRole::Owner)
            .await
            .unwrap();
        let mut owner = Browser::new(&app);
        owner.signed_in(OWNER).await;
        let html = owner.get(&page).await.text().await.unwrap();
        assert!(!html.contains(&format!("action=\"{members_path}\"")), "no member forms for owners");
        let refused = owner.submit(&page, &remove, &[("email", OWNER)]).await;
        assert_eq!(refused.status(), 403);
        let refused = owner.submit(&page, list, &[("name", "Mine")]).await;
        assert_eq!(refused.status(), 403);
        assert_eq!(members(&app, &key.application).await.len(), 1);
        // Signed out: a page redirects to sign-in, a post is refused.
        let mut anonymous = Browser::new(&app);
        assert_redirected_to_sign_in(&anonymous.get(&page).await);
        assert_eq!(anonymous.post(&members_path, &[("email", OWNER)]).await.status(), 403);
    }

    async fn console_owners_see_their_alerts_and_webhook_deliveries_without_secrets(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        app.create_user(OWNER).await;
        let mine = app.create_key(Environment::Production).await;
        let theirs = app.create_key(Environment::Production).await;
        app.admin
            .add_application_member(&mine.application, OWNER, ApplicationRole::Owner)
            .await
            .unwrap();
        let secret = app
            .admin
            .set_key_webhook(&mine.id, Some("https://hook-user:hook-password@hooks.example.com/owner?token=query-secret"))
            .await
            .unwrap()
            .unwrap();
        let alert = raise(&app, &mine.id, AlertRule::RevokedKeyUsed).await;
        let foreign = raise(&app, &theirs.id, AlertRule::RateSpike).await;

        let mut browser = Browser::new(&app);
        browser.signed_in(OWNER).await;
        let path = format!("/console/applications/{}", mine.application);
        let page = browser.get(&path).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("revoked_key_used") && html.contains(mine.id.as_str()));
        assert!(!html.contains("rate_spike") && !html.contains(theirs.id.as_str()));
        assert!(!html.contains(foreign.as_str()));
        assert!(html.contains("https://hooks.example.com/owner"), "{html}");
        for hidden in [secret.expose_secret(), "hook-password", "hook-user", "query-secret"] {
            assert!(!html.contains(hidden), "{hidden} shown");
        }
        let delivery = app
            .state
            .service
            .store()
            .key_webhook_deliveries(&mine.id, 1)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(delivery.alert_id, alert);
        assert!(html.contains(&delivery.id), "the delivery is listed");
        assert!(["queued", "retrying", "given up", "delivered"]
            .iter()
            .any(|state| html.contains(&format!("<span class=\"status\">{state}</span>"))));
        // Read-only for owners: no acknowledge form, and the action refused.
        assert!(!html.contains("/ack\""));
        let refused = browser
            .submit(&path, &format!("/console/alerts/{alert}/ack"), &[])
            .await;
        assert_eq!(refused.status(), 403);
        assert!(app.admin.list_alerts(None, None, 10).await.unwrap().items.iter().all(|alert| alert.acknowledged_at.is_none()));
        // Another application's page is the same 403 as a missing one.
        let other = browser.get(&format!("/console/applications/{}", theirs.application)).await;
        assert_eq!(other.status(), 403);
        let other = other.text().await.unwrap();
        let missing = browser.get("/console/applications/app_missing").await.text().await.unwrap();
        assert_eq!(other, missing);
        assert!(!other.contains("rate_spike"));

        // Admins may acknowledge from the same page, audited as themselves.
        let mut admin = Browser::new(&app);
        admin.signed_in(ADMIN).await;
        let html = admin.get(&path).await.text().await.unwrap();
        assert!(html.contains(&format!("action=\"/console/alerts/{alert}/ack\"")));
        let acked = admin.submit(&path, &format!("/console/alerts/{alert}/ack"), &[]).await;
        assert_eq!(acked.status(), 303);
        let html = browser.get(&path).await.text().await.unwrap();
        assert!(html.contains(&format!("by admin:{ADMIN}")), "the owner sees who acknowledged it");
    }

    async fn console_overview_charts_every_keys_usage_beside_the_open_alerts(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let first = app.create_key(Environment::Production).await;
        let second = app.create_key(Environment::Production).await;
        let minute = UsageResolution::Minute.bucket_start(app.state.service.clock().now());
        let delta = |key: &KeyId, outcome: &str, count: u64| UsageDelta {
            key_id: key.clone(),
            minute,
            outcome: outcome.to_owned(),
            count,
        };
        let batch = UsageBatch {
            counts: vec![
                delta(&first.id, "2xx", 5),
                delta(&second.id, "2xx", 2),
                delta(&second.id, "4xx:token_expired", 2),
                delta(&first.id, "5xx", 1),
            ],
            ..Default::default()
        };
        app.state.service.store().add_key_usage(&batch).await.unwrap();
        raise(&app, &first.id, AlertRule::RevokedKeyUsed).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let page = browser.get("/console/").await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 2, "{html}");
        assert!(html.contains("Last 24 hours, per hour: 10 requests, 3 errors"), "{html}");
        assert!(html.contains("Last hour, per minute: 10 requests, 3 errors"), "{html}");
        assert!(html.contains("10 and 3 in this period (30% errors)"));
        assert!(html.contains("revoked_key_used"), "the open alert beside the charts");
        assert!(!html.contains("style="), "no inline style");
    }
}
