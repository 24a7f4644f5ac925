//! The web console (`/console/`, CONTRACT section 9) over HTTP, on both
//! backends: serving and `--console false`, the session cookie's flags
//! (and `Secure` behind a trusted HTTPS proxy), the security headers, CSRF
//! refusals, the ends of a session (sign-out, disable, password change),
//! sign-in throttling shared with the API login, the owner view's 403s,
//! the no-access page, and actions audited as the signed-in user. The keys
//! pages (search, state filter, pages; editing a key's settings), signing
//! key rotation, and the session's hardening: `__Secure-` cookies over HTTPS,
//! malformed cookies answered without storage, sign-in and sign-out
//! audited, unknown paths as the 404 page.

use crate::backend_tests;
use crate::helpers::{TestApp, PASSWORD};
use assetpool_core::admin::CreateApiKey;
use assetpool_core::ids::KeyId;
use assetpool_core::{ApplicationRole, Environment};
use reqwest::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::Response;
use secrecy::SecretString;

/// Applications, the owner view and the overview (with this module's browser).
mod applications;

const ADMIN: &str = "console-admin@example.com";
const OWNER: &str = "console-owner@example.com";
const NOBODY: &str = "console-nobody@example.com";
const SESSION: &str = "assetpool_console";
const SECURE_SESSION: &str = "__Secure-assetpool_console";

/// A browser of the console: no redirects followed, cookies kept by name.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    /// Extra headers on every request (a proxy's, in some tests).
    headers: Vec<(&'static str, &'static str)>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for line in response.headers().get_all(SET_COOKIE) {
            let line = line.to_str().unwrap();
            let (name, rest) = line.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap().to_owned();
            self.cookies.retain(|(kept, _)| kept != name);
            if !line.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value));
            }
        }
    }

    /// The session cookie, by either of its names (plain HTTP, HTTPS).
    fn session_cookie(&self) -> Option<String> {
        self.cookies
            .iter()
            .find(|(name, _)| name == SESSION || name == SECURE_SESSION)
            .map(|(_, value)| value.clone())
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, self.app.url(path))
            .header(COOKIE, self.cookie_header());
        for (name, value) in &self.headers {
            request = request.header(*name, *value);
        }
        request
    }

    async fn get(&mut self, path: &str) -> Response {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let response = self
            .request(reqwest::Method::POST, path)
            .form(fields)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status(), 200, "{path}");
        csrf_in(&page.text().await.unwrap())
    }

    /// Signs in; the answer to the sign-in form.
    async fn sign_in(&mut self, email: &str, password: &str) -> Response {
        let token = self.csrf("/console/sign-in").await;
        self.post(
            "/console/sign-in",
            &[
                ("csrf_token", &token),
                ("username", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Signs in with the right password and expects to be in.
    async fn signed_in(&mut self, email: &str) {
        let response = self.sign_in(email, PASSWORD).await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()[LOCATION], "/console/");
        assert!(self.session_cookie().is_some());
    }

    /// Posts a signed-in form with the CSRF token of `page`.
    async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.csrf(page).await;
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn set_cookie_line(response: &Response, name: &str) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|line| line.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

async fn create_admin(app: &TestApp) {
    app.admin
        .create_user(ADMIN, SecretString::from(PASSWORD), true)
        .await
        .unwrap();
}

fn assert_redirected_to_sign_in(response: &Response) {
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/console/sign-in");
}

async fn create_owner_of_a_key(app: &TestApp) -> crate::helpers::TestKey {
    app.create_user(OWNER).await;
    let key = app.create_key(Environment::Production).await;
    app.admin
        .add_application_member(&key.application, OWNER, ApplicationRole::Owner)
        .await
        .unwrap();
    key
}

/// A key named `name`, its id.
async fn named_key(app: &TestApp, name: &str, environment: Environment) -> KeyId {
    app.admin
        .create_api_key(CreateApiKey::new(name, environment))
        .await
        .unwrap()
        .record
        .id
}

/// The ids of the keys a console key list shows, in order.
fn listed_ids(html: &str) -> Vec<String> {
    html.split("<tr><td><a href=\"/console/keys/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// Storage reads of the console's session look-up so far, from `/metrics`.
async fn session_lookups(app: &TestApp) -> u64 {
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(
                "assetpool_storage_operation_duration_seconds_count{operation=\"console_session\"} ",
            )
        })
        .map_or(0, |count| count.parse().unwrap())
}

backend_tests! {
    async fn the_console_is_served_with_its_security_headers_and_can_be_turned_off(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        let page = browser.get("/console/").await;
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert_eq!(
            policy,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        );
        assert!(!policy.contains("unsafe-inline"));
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        let html = page.text().await.unwrap();
        assert!(html.contains("<label for=\"username\">"));
        assert!(!html.contains("<script>") && !html.contains(" onclick="));
        let style = browser.get(&format!("/console/assets/{}/console.css", env!("CARGO_PKG_VERSION"))).await;
        assert_eq!(style.status(), 200);
        assert!(style.headers()[CACHE_CONTROL].to_str().unwrap().contains("max-age=31536000"));

        let off = TestApp::spawn_with(backend, |settings| settings.console = false).await;
        let mut browser = Browser::new(&off);
        assert_eq!(browser.get("/console/").await.status(), 404);
        assert_eq!(browser.get("/console/sign-in").await.status(), 404);
        assert_eq!(browser.post("/console/sign-in", &[]).await.status(), 404);
    }

    async fn sign_in_sets_an_http_only_strict_cookie_not_secure_over_plain_http(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let mut browser = Browser::new(&app);
        let token = browser.csrf("/console/sign-in").await;
        let response = browser
            .post(
                "/console/sign-in",
                &[("csrf_token", &token), ("username", ADMIN), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(response.status(), 303);
        let line = set_cookie_line(&response, SESSION);
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(line.contains(flag), "{line}");
        }
        assert!(!line.contains("Secure"), "{line}");
        let home = browser.get("/console/").await;
        assert_eq!(home.status(), 200);
        assert_eq!(home.headers()[CACHE_CONTROL], "no-store");
        assert!(home.text().await.unwrap().contains("Overview"));
        // The session's secret is not the sign-in form's token, and the
        // store keeps no copy of it (only its hash).
        assert_ne!(browser.session_cookie().unwrap(), token);
    }

    async fn the_cookie_is_secure_only_when_a_trusted_proxy_says_https(backend) {
        let trusting = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        create_admin(&trusting).await;
        let mut browser = Browser::new(&trusting);
        browser.headers.push(("x-forwarded-proto", "https"));
        let response = browser.sign_in(ADMIN, PASSWORD).await;
        assert_eq!(response.status(), 303);
        assert!(set_cookie_line(&response, SECURE_SESSION).contains("; Secure"));

        let other = TestApp::spawn(backend).await;
        create_admin(&other).await;
        let mut browser = Browser::new(&other);
        browser.headers.push(("x-forwarded-proto", "https"));
        let response = browser.sign_in(ADMIN, PASSWORD).await;
        assert_eq!(response.status(), 303);
        assert!(!set_cookie_line(&response, SESSION).contains("Secure"));
    }

    async fn posts_without_the_right_csrf_token_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let mut browser = Browser::new(&app);
        // The sign-in form itself needs its token.
        let refused = browser
            .post("/console/sign-in", &[("username", ADMIN), ("password", PASSWORD)])
            .await;
        assert_eq!(refused.status(), 403);
        assert!(browser.session_cookie().is_none());
        browser.signed_in(ADMIN).await;
        let fields = [("name", "csrf-test"), ("environment", "production")];
        assert_eq!(browser.post("/console/keys", &fields).await.status(), 403);
        let mut wrong = vec![("csrf_token", "0".repeat(64))];
        wrong.extend(fields.iter().map(|(name, value)| (*name, value.to_string())));
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let response = browser.post("/console/keys", &wrong).await;
        assert_eq!(response.status(), 403);
        assert!(response.text().await.unwrap().contains("security token"));
        assert!(app.admin.list_api_keys(None, &assetpool_core::store::CreationPage::all()).await.unwrap().is_empty());
        let created = browser.submit("/console/keys", "/console/keys", &fields).await;
        assert_eq!(created.status(), 201);
        let html = created.text().await.unwrap();
        let marker = "class=\"secret-value\" readonly value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        let secret = html[start..].split('"').next().unwrap().to_owned();
        assert!(secret.starts_with("apk_prod_"), "{secret}");
        // Shown once: the key's own page has only its prefix.
        let keys = app.admin.list_api_keys(None, &assetpool_core::store::CreationPage::all()).await.unwrap();
        let page = browser.get(&format!("/console/keys/{}", keys[0].id)).await;
        assert_eq!(page.status(), 200);
        assert!(!page.text().await.unwrap().contains(&secret));
        // Audited as the signed-in admin.
        let audit = app.admin.list_audit(None, 50).await.unwrap();
        assert!(audit.items.iter().any(|entry| entry.action == "key.create"
            && entry.actor == format!("admin:{ADMIN}")));
    }

    async fn sign_out_ends_the_session(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let old = browser.cookies.clone();
        let response = browser.submit("/console/", "/console/sign-out", &[]).await;
        assert_eq!(response.status(), 303);
        assert!(set_cookie_line(&response, SESSION).contains("Max-Age=0"));
        browser.cookies = old;
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);
        let home = browser.get("/console/").await.text().await.unwrap();
        assert!(home.contains("action=\"/console/sign-in\"") && !home.contains("Overview"));
    }

    async fn disabling_the_user_or_changing_the_password_ends_the_session(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        assert_eq!(browser.get("/console/keys").await.status(), 200);
        app.admin.set_user_disabled(ADMIN, true).await.unwrap();
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);
        app.admin.set_user_disabled(ADMIN, false).await.unwrap();
        // Enabling the user again does not bring the old session back.
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);

        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        assert_eq!(browser.get("/console/keys").await.status(), 200);
        let new_password = "another long password 77";
        app.admin
            .set_password(ADMIN, SecretString::from(new_password))
            .await
            .unwrap();
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);
        assert_eq!(browser.sign_in(ADMIN, PASSWORD).await.status(), 401);
        assert_eq!(browser.sign_in(ADMIN, new_password).await.status(), 303);
    }

    async fn sign_in_is_throttled_like_the_api_login_and_shares_its_counters(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let key = app.create_key(Environment::Production).await;
        let mut browser = Browser::new(&app);
        for _ in 0..5 {
            let response = browser.sign_in(ADMIN, "wrong password!!").await;
            assert_eq!(response.status(), 401);
            assert!(response.text().await.unwrap().contains("wrong"));
        }
        let throttled = browser.sign_in(ADMIN, PASSWORD).await;
        assert_eq!(throttled.status(), 429);
        let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1);
        assert!(browser.session_cookie().is_none());
        // The same counters as the API login's: it is throttled too.
        let api = app.login(&key.key, ADMIN, PASSWORD).await;
        assert_eq!(api.status(), 429);
        // Unknown and disabled users get the wrong password's answer.
        app.create_user(NOBODY).await;
        app.admin.set_user_disabled(NOBODY, true).await.unwrap();
        assert_eq!(browser.sign_in(NOBODY, PASSWORD).await.status(), 401);
        assert_eq!(browser.sign_in("unknown@example.com", PASSWORD).await.status(), 401);
    }

    async fn owners_see_only_their_applications(backend) {
        let app = TestApp::spawn(backend).await;
        app.create_user(OWNER).await;
        let mine = app.create_key(Environment::Production).await;
        let theirs = app.create_key(Environment::Production).await;
        app.admin
            .add_application_member(&mine.application, OWNER, ApplicationRole::Owner)
            .await
            .unwrap();
        app.admin
            .add_application_member(&theirs.application, OWNER, ApplicationRole::Member)
            .await
            .unwrap();
        let mut browser = Browser::new(&app);
        browser.signed_in(OWNER).await;
        let home = browser.get("/console/").await;
        assert_eq!(home.status(), 200);
        assert!(home.text().await.unwrap().contains(mine.application.as_str()));
        let own = browser.get(&format!("/console/keys/{}", mine.id)).await;
        assert_eq!(own.status(), 200);
        let own = own.text().await.unwrap();
        assert!(!own.contains(&mine.key));
        assert!(own.contains("<svg class=\"chart\""), "the usage chart is an SVG");

        let foreign = browser.get(&format!("/console/keys/{}", theirs.id)).await;
        assert_eq!(foreign.status(), 403);
        let foreign = foreign.text().await.unwrap();
        let missing = browser.get("/console/keys/key_0000000000000000000000000000000").await;
        assert_eq!(missing.status(), 403);
        assert_eq!(missing.text().await.unwrap(), foreign, "not yours and missing look alike");
        assert!(!foreign.contains(theirs.id.as_str()));
        let other_application = browser.get(&format!("/console/applications/{}", theirs.application)).await;
        assert_eq!(other_application.status(), 403);
        assert_eq!(other_application.text().await.unwrap(), foreign);
        assert_eq!(browser.get("/console/keys").await.status(), 403);
        assert_eq!(browser.get("/console/audit").await.status(), 403);
        let page = format!("/console/keys/{}", mine.id);
        let refused = browser
            .submit(&page, &format!("/console/keys/{}/revoke", theirs.id), &[("reason", "x")])
            .await;
        assert_eq!(refused.status(), 403);
        assert_eq!(app.admin.api_key(&theirs.id).await.unwrap().status.as_str(), "active");
        // Their own key: revoked at once, audited as the owner.
        let revoked = browser
            .submit(&page, &format!("/console/keys/{}/revoke", mine.id), &[("reason", "compromised")])
            .await;
        assert_eq!(revoked.status(), 303);
        assert_eq!(app.admin.api_key(&mine.id).await.unwrap().status.as_str(), "revoked");
        let audit = app.admin.list_audit(None, 50).await.unwrap();
        assert!(audit.items.iter().any(|entry| entry.action == "key.revoke"
            && entry.actor == format!("owner:{OWNER}")));
    }

    async fn owners_rotate_their_keys_with_a_grace_period(backend) {
        let app = TestApp::spawn(backend).await;
        app.create_user(OWNER).await;
        let mine = app.create_key(Environment::Production).await;
        app.admin
            .add_application_member(&mine.application, OWNER, ApplicationRole::Owner)
            .await
            .unwrap();
        let mut browser = Browser::new(&app);
        browser.signed_in(OWNER).await;
        let page = format!("/console/keys/{}", mine.id);
        let rotated = browser
            .submit(&page, &format!("/console/keys/{}/rotate", mine.id), &[("grace", "1h")])
            .await;
        assert_eq!(rotated.status(), 201);
        assert!(rotated.text().await.unwrap().contains("apk_prod_"));
        assert_eq!(app.admin.api_key(&mine.id).await.unwrap().status.as_str(), "rotating");
    }

    async fn an_owners_grace_period_is_capped_like_everywhere_else(backend) {
        let app = TestApp::spawn(backend).await;
        app.create_user(OWNER).await;
        let mine = app.create_key(Environment::Production).await;
        app.admin
            .add_application_member(&mine.application, OWNER, ApplicationRole::Owner)
            .await
            .unwrap();
        let mut browser = Browser::new(&app);
        browser.signed_in(OWNER).await;
        let page = format!("/console/keys/{}", mine.id);
        let action = format!("/console/keys/{}/rotate", mine.id);
        let refused = browser.submit(&page, &action, &[("grace", "3000d")]).await;
        assert_eq!(refused.status(), 400);
        assert_eq!(app.admin.api_key(&mine.id).await.unwrap().status.as_str(), "active");
        let at_once = browser.submit(&page, &action, &[("grace", "0s")]).await;
        assert_eq!(at_once.status(), 201);
    }

    async fn an_email_cannot_steer_a_form_to_another_path(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let crafted = "a/../victim@corp.example";
        app.admin
            .create_user(crafted, SecretString::from(PASSWORD), false)
            .await
            .unwrap();
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let users = browser.get("/console/users").await;
        let html = users.text().await.unwrap();
        assert!(!html.contains("/console/users/a/"), "a path separator in a form action");
        assert!(html.contains("/console/users/a%2F..%2Fvictim%40corp.example/"), "{html}");
    }

    async fn users_without_a_role_see_the_no_access_page(backend) {
        let app = TestApp::spawn(backend).await;
        app.create_user(NOBODY).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(NOBODY).await;
        let home = browser.get("/console/").await;
        assert_eq!(home.status(), 403);
        let html = home.text().await.unwrap();
        assert!(html.contains("No console access"));
        assert!(html.contains("action=\"/console/sign-out\""));
        let keys = browser.get("/console/keys").await;
        assert_eq!(keys.status(), 403);
        assert!(keys.text().await.unwrap().contains("No console access"));
    }

    async fn keys_are_searched_by_id_prefix_or_name_and_filtered_by_status(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let shop = named_key(&app, "Shop backend", Environment::Production).await;
        let shop_staging = named_key(&app, "Shop staging", Environment::Staging).await;
        let billing = named_key(&app, "billing", Environment::Production).await;
        let revoked = named_key(&app, "Shop old", Environment::Production).await;
        app.admin.revoke_api_key(&revoked, Some("old")).await.unwrap();
        let disabled = named_key(&app, "paused", Environment::Production).await;
        app.admin.set_api_key_disabled(&disabled, true).await.unwrap();
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let mut list = async |query: &str| {
            let page = browser.get(&format!("/console/keys?{query}")).await;
            assert_eq!(page.status(), 200, "{query}");
            listed_ids(&page.text().await.unwrap())
        };
        let ids = |keys: &[&KeyId]| keys.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        assert_eq!(list("").await.len(), 5);
        assert_eq!(list("q=Shop").await, ids(&[&shop, &shop_staging, &revoked]));
        assert_eq!(list("q=shop").await, Vec::<String>::new(), "case as typed");
        assert_eq!(list("q=Shop+b").await, ids(&[&shop]));
        assert_eq!(list(&format!("q={billing}")).await, ids(&[&billing]));
        let prefix = app.admin.api_key(&billing).await.unwrap().prefix;
        assert_eq!(list(&format!("q={prefix}")).await, ids(&[&billing]));
        assert_eq!(list("q=Shop&environment=staging").await, ids(&[&shop_staging]));
        assert_eq!(list("q=Shop&status=revoked").await, ids(&[&revoked]));
        assert_eq!(list("status=disabled").await, ids(&[&disabled]));
        assert_eq!(list("status=active").await, ids(&[&shop, &shop_staging, &billing]));
        assert_eq!(list("status=expired").await, Vec::<String>::new());
        assert_eq!(list("status=all&environment=").await.len(), 5);
        let html = browser.get("/console/keys?status=revoked").await.text().await.unwrap();
        assert!(html.contains("<option value=\"revoked\" selected>"), "the filter stays chosen");
        assert!(html.contains("<label for=\"status\">Status</label>"));
        // Values the form does not offer: a 400 page, never a 500.
        let long = format!("q={}", "x".repeat(201));
        for query in ["status=gone", "environment=moon", long.as_str()] {
            let refused = browser.get(&format!("/console/keys?{query}")).await;
            assert_eq!(refused.status(), 400, "{query}");
        }
    }

    async fn key_pages_keep_their_filters(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        for number in 0..52 {
            named_key(&app, &format!("bulk {number:02}"), Environment::Staging).await;
        }
        named_key(&app, "bulk other", Environment::Production).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let first = browser
            .get("/console/keys?q=bulk&environment=staging&status=active")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(listed_ids(&first).len(), 50);
        let marker = "<a class=\"button\" href=\"";
        let start = first.find(marker).expect("a next page") + marker.len();
        let next = first[start..].split('"').next().unwrap().replace("&amp;", "&");
        assert!(next.contains("q=bulk") && next.contains("status=active"), "{next}");
        let second = browser.get(&next).await.text().await.unwrap();
        assert_eq!(listed_ids(&second).len(), 2, "the staging keys only, from the cursor on");
        assert!(!second.contains(marker), "the last page");
    }

    async fn admins_edit_a_keys_limits_scopes_allow_list_and_metadata(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let key = app.create_key(Environment::Production).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        let page = format!("/console/keys/{}", key.id);
        let action = format!("/console/keys/{}/update", key.id);
        let html = browser.get(&page).await.text().await.unwrap();
        for label in ["for=\"rate_limit\"", "for=\"quota\"", "for=\"scopes\"", "for=\"allowed_cidrs\"", "for=\"metadata\""] {
            assert!(html.contains(label), "{label}");
        }
        let saved = browser
            .submit(&page, &action, &[("rate_limit", "50/s"), ("burst", "10"), ("quota", "1000/day")])
            .await;
        assert_eq!(saved.status(), 303);
        let saved = browser.submit(&page, &action, &[("scopes", "orders:read  orders:write")]).await;
        assert_eq!(saved.status(), 303);
        let saved = browser
            .submit(&page, &action, &[("allowed_cidrs", "203.0.113.0/24, 2001:db8::/32")])
            .await;
        assert_eq!(saved.status(), 303);
        let saved = browser.submit(&page, &action, &[("metadata", "{\"team\": \"payments\"}")]).await;
        assert_eq!(saved.status(), 303);
        let stored = app.admin.api_key(&key.id).await.unwrap();
        assert_eq!(stored.rate_limit.as_deref(), Some("50/s"));
        assert_eq!(stored.burst, Some(10));
        assert_eq!(stored.quota.as_deref(), Some("1000/day"));
        assert_eq!(stored.scopes, Some(vec!["orders:read".to_owned(), "orders:write".to_owned()]));
        assert_eq!(stored.allowed_cidrs, Some(vec!["203.0.113.0/24".to_owned(), "2001:db8::/32".to_owned()]));
        assert_eq!(stored.metadata.unwrap()["team"], "payments");
        // The page shows them back in the forms, so saving unchanged is a no-op.
        let html = browser.get(&page).await.text().await.unwrap();
        assert!(html.contains("value=\"50/s\"") && html.contains("value=\"orders:read orders:write\""));
        // Bad values: a 400 page that says why; nothing changes.
        for (field, value, says) in [
            ("rate_limit", "fast", "rateLimit is COUNT/s"),
            ("burst", "many", "burst is a whole number"),
            ("quota", "10/year", "quota is COUNT/hour"),
            ("scopes", "Orders!", "scopes"),
            ("allowed_cidrs", "10.0.0.0/33", "allowedCidrs"),
            ("metadata", "[1]", "JSON object"),
            ("metadata", "{not json", "JSON object"),
        ] {
            let refused = browser.submit(&page, &action, &[(field, value)]).await;
            assert_eq!(refused.status(), 400, "{field}={value}");
            let text = refused.text().await.unwrap();
            assert!(text.contains(says), "{field}={value}: {text}");
        }
        assert_eq!(browser.submit(&page, &action, &[]).await.status(), 400);
        // Blank removes: no limits, unrestricted, any address, no metadata.
        let cleared = browser
            .submit(&page, &action, &[("rate_limit", ""), ("burst", "10"), ("quota", ""), ("scopes", ""), ("allowed_cidrs", " "), ("metadata", "")])
            .await;
        assert_eq!(cleared.status(), 303);
        let stored = app.admin.api_key(&key.id).await.unwrap();
        assert_eq!((stored.rate_limit, stored.quota, stored.scopes, stored.allowed_cidrs), (None, None, None, None));
        assert!(stored.metadata.is_none());
        let audit = app.admin.list_audit(None, 50).await.unwrap();
        assert!(audit.items.iter().any(|entry| entry.action == "key.update"
            && entry.actor == format!("admin:{ADMIN}") && entry.outcome == "success"));
    }

    async fn owners_cannot_edit_their_keys_settings(backend) {
        let app = TestApp::spawn(backend).await;
        let key = create_owner_of_a_key(&app).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(OWNER).await;
        let page = format!("/console/keys/{}", key.id);
        assert!(!browser.get(&page).await.text().await.unwrap().contains("/update\""));
        let refused = browser
            .submit(&page, &format!("/console/keys/{}/update", key.id), &[("rate_limit", "1/s")])
            .await;
        assert_eq!(refused.status(), 403);
        assert!(app.admin.api_key(&key.id).await.unwrap().rate_limit.is_none());
    }

    async fn admins_rotate_the_signing_key(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let before = app.admin.signing_keys().await.unwrap();
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        // CSRF-protected like every form.
        let refused = browser.post("/console/signing-keys/rotate", &[]).await;
        assert_eq!(refused.status(), 403);
        let rotated = browser
            .submit("/console/signing-keys", "/console/signing-keys/rotate", &[])
            .await;
        assert_eq!(rotated.status(), 303);
        assert_eq!(rotated.headers()[LOCATION], "/console/signing-keys");
        let after = app.admin.signing_keys().await.unwrap();
        assert_eq!(after.len(), before.len() + 1);
        let listed = browser.get("/console/signing-keys").await.text().await.unwrap();
        assert!(after.iter().all(|key| listed.contains(&key.kid)));
        let audit = app.admin.list_audit(None, 50).await.unwrap();
        assert!(audit.items.iter().any(|entry| entry.action == "signing_key.rotate"
            && entry.actor == format!("admin:{ADMIN}")));

        let owner_key = create_owner_of_a_key(&app).await;
        let mut owner = Browser::new(&app);
        owner.signed_in(OWNER).await;
        let page = format!("/console/keys/{}", owner_key.id);
        let refused = owner.submit(&page, "/console/signing-keys/rotate", &[]).await;
        assert_eq!(refused.status(), 403);
        assert_eq!(app.admin.signing_keys().await.unwrap().len(), after.len());
    }

    async fn a_malformed_session_cookie_is_signed_out_without_a_storage_read(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let mut browser = Browser::new(&app);
        browser.signed_in(ADMIN).await;
        assert_eq!(browser.get("/console/keys").await.status(), 200);
        let good = browser.session_cookie().unwrap();
        let before = session_lookups(&app).await;
        assert!(before >= 1, "a real session is looked up");
        let body = &good["apc_".len()..];
        for malformed in [
            String::new(),
            "x".to_owned(),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            format!("apx_{body}"),
            format!("apc_{}%", &body[1..]),
            "a".repeat(4000),
        ] {
            browser.cookies = vec![(SESSION.to_owned(), malformed.clone())];
            assert_redirected_to_sign_in(&browser.get("/console/keys").await);
            let post = browser.post("/console/keys", &[("csrf_token", "x")]).await;
            assert_eq!(post.status(), 403, "{malformed}");
        }
        assert_eq!(session_lookups(&app).await, before, "no storage read for a malformed cookie");
        // A well-formed unknown secret is looked up, and is no session either.
        browser.cookies = vec![(SESSION.to_owned(), format!("apc_{}", "b".repeat(43)))];
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);
        assert_eq!(session_lookups(&app).await, before + 1);
    }

    async fn over_https_the_cookies_are_secure_prefixed_and_each_transport_reads_its_own(backend) {
        let app = TestApp::spawn_with(backend, |settings| {
            settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;
        create_admin(&app).await;
        let mut browser = Browser::new(&app);
        browser.headers.push(("x-forwarded-proto", "https"));
        let form = browser.get("/console/sign-in").await;
        let line = set_cookie_line(&form, "__Secure-assetpool_console_sign_in");
        for flag in ["; Path=/console;", "; Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(line.contains(flag), "{line}");
        }
        assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
        let response = browser.sign_in(ADMIN, PASSWORD).await;
        assert_eq!(response.status(), 303);
        let line = set_cookie_line(&response, SECURE_SESSION);
        for flag in ["; Path=/console;", "; Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(line.contains(flag), "{line}");
        }
        assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
        assert_eq!(browser.get("/console/keys").await.status(), 200);
        let secret = browser.session_cookie().unwrap();
        // Over HTTPS the name without the prefix is not read (a plain-HTTP
        // answer could have set it) ...
        browser.cookies = vec![(SESSION.to_owned(), secret.clone())];
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);
        // ... and over plain HTTP only that name is.
        browser.headers.clear();
        assert_eq!(browser.get("/console/keys").await.status(), 200);
        browser.cookies = vec![(SECURE_SESSION.to_owned(), secret.clone())];
        assert_redirected_to_sign_in(&browser.get("/console/keys").await);
        // Sign-out over HTTPS clears the prefixed cookie.
        browser.headers.push(("x-forwarded-proto", "https"));
        let out = browser.submit("/console/", "/console/sign-out", &[]).await;
        assert_eq!(out.status(), 303);
        let line = set_cookie_line(&out, SECURE_SESSION);
        assert!(line.contains("Max-Age=0") && line.contains("; Path=/console;"), "{line}");
    }

    async fn unknown_users_are_throttled_without_spending_a_real_accounts_budget(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let key = app.create_key(Environment::Production).await;
        let mut browser = Browser::new(&app);
        for _ in 0..5 {
            assert_eq!(browser.sign_in("nobody-here@example.com", PASSWORD).await.status(), 401);
        }
        // Throttled like the API login: the same counters for the same name.
        let throttled = browser.sign_in("nobody-here@example.com", PASSWORD).await;
        assert_eq!(throttled.status(), 429);
        assert!(throttled.headers().contains_key("retry-after"));
        assert_eq!(app.login(&key.key, "nobody-here@example.com", PASSWORD).await.status(), 429);
        // The real account spent nothing: no counter of its own, and it
        // signs in from the same address.
        assert!(app.admin.login_throttles(Some(ADMIN)).await.unwrap().is_empty());
        let unknown = app.admin.login_throttles(Some("nobody-here@example.com")).await.unwrap();
        assert!(!unknown.is_empty());
        browser.signed_in(ADMIN).await;
        assert_eq!(app.login(&key.key, ADMIN, PASSWORD).await.status(), 200);
    }

    async fn sign_in_and_sign_out_are_audited_as_the_user(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        create_owner_of_a_key(&app).await;
        let mut admin = Browser::new(&app);
        assert_eq!(admin.sign_in(ADMIN, "wrong password!!").await.status(), 401);
        admin.signed_in(ADMIN).await;
        let mut owner = Browser::new(&app);
        owner.signed_in(OWNER).await;
        assert_eq!(owner.submit("/console/", "/console/sign-out", &[]).await.status(), 303);
        let audit = app.admin.list_audit(None, 50).await.unwrap().items;
        let entries = |action: &str| {
            audit
                .iter()
                .filter(|entry| entry.action == action)
                .map(|entry| (entry.actor.clone(), entry.target.clone(), entry.outcome.clone()))
                .collect::<Vec<_>>()
        };
        let success = "success".to_owned();
        let mut signed_in = entries("console.sign_in");
        signed_in.sort();
        assert_eq!(
            signed_in,
            [
                (format!("admin:{ADMIN}"), ADMIN.to_owned(), success.clone()),
                (format!("owner:{OWNER}"), OWNER.to_owned(), success.clone()),
            ],
            "a sign-in per success, none for the wrong password"
        );
        assert_eq!(
            entries("console.sign_out"),
            [(format!("owner:{OWNER}"), OWNER.to_owned(), success)]
        );
        let entry = audit.iter().find(|entry| entry.action == "console.sign_in").unwrap();
        assert!(entry.detail["session"].is_string() && entry.detail["clientAddress"] == "127.0.0.1");
        let text = serde_json::to_string(&audit).unwrap();
        assert!(!text.contains("apc_"), "no session secret in the audit log");
    }

    async fn unknown_console_paths_are_the_404_page_for_everyone(backend) {
        let app = TestApp::spawn(backend).await;
        create_admin(&app).await;
        let key = create_owner_of_a_key(&app).await;
        let mut anonymous = Browser::new(&app);
        let reference = anonymous.get("/console/no-such-page").await;
        assert_eq!(reference.status(), 404);
        assert!(reference.headers().contains_key("content-security-policy"));
        let reference = reference.text().await.unwrap();
        assert!(reference.contains("Not found"));
        let mut owner = Browser::new(&app);
        owner.signed_in(OWNER).await;
        let mut admin = Browser::new(&app);
        admin.signed_in(ADMIN).await;
        let rotate = format!("/console/keys/{}/rotate", key.id);
        for browser in [&mut anonymous, &mut owner, &mut admin] {
            for path in ["/console/no-such-page", "/console/keys/x/y/z", "/console/settings/", &rotate] {
                let page = browser.get(path).await;
                assert_eq!(page.status(), 404, "{path}");
                assert_eq!(page.text().await.unwrap(), reference, "{path}: nothing told apart");
            }
            let put = browser.request(reqwest::Method::PUT, "/console/keys").send().await.unwrap();
            assert_eq!(put.status(), 404);
            assert_eq!(put.text().await.unwrap(), reference);
        }
    }
}
