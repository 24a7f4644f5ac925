//! The web console (`/console/`, CONTRACT section 9) over HTTP, on both
//! backends: serving and `--console false`, the session cookie's flags
//! (and `Secure` behind a trusted HTTPS proxy), the security headers, CSRF
//! refusals, the ends of a session (sign-out, disable, password change),
//! sign-in throttling shared with the API login, the owner view's 403s,
//! the no-access page, and actions audited as the signed-in user.

use crate::backend_tests;
use crate::helpers::{TestApp, PASSWORD};
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

    fn session_cookie(&self) -> Option<String> {
        self.cookies
            .iter()
            .find(|(name, _)| name == SESSION)
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
        assert!(set_cookie_line(&response, SESSION).contains("; Secure"));

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
}
