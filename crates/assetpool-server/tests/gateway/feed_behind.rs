//! A server whose change feed is behind (held back here on purpose, as load
//! or a slow database can hold it back for a moment) may read a key from
//! storage that the feed has not told it about yet. What it read must not be
//! contradicted by what it remembers: once it has read a key as disabled or
//! revoked, the tokens issued through that key are refused through the
//! application's other keys too, by the reverse proxy and `/auth/verify`,
//! without waiting for the feed.

use crate::backend_tests;
use crate::helpers::{Backend, Storage, TestApp, TestKey};
use crate::scenarios::{get_through, logged_in, reached_upstream, refused, start_upstream};
use assetpool_core::Environment;
use assetpool_store_tests::postgres::execute_detached;
use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;
use std::str::FromStr;
use std::time::Duration;

/// A second server on `node`'s database, in front of a real upstream, whose
/// change feed does not move until [`HeldFeed::release`]. On SQLite it polls
/// the feed once a minute here; on PostgreSQL, where every commit wakes it, it
/// connects as a role of its own whose right to read the feed's table is
/// taken away while the feed is held.
struct HeldFeed {
    front: TestApp,
    role: Option<FeedRole>,
}

impl HeldFeed {
    async fn start(backend: Backend, node: &TestApp) -> HeldFeed {
        let upstream = start_upstream().await;
        let (url, role) = match backend {
            Backend::Sqlite => (node.database_url.clone(), None),
            Backend::Postgres => {
                let role = FeedRole::create(&node.database_url).await;
                (role.url.clone(), Some(role))
            }
        };
        let front = TestApp::start(url, Storage::None, |settings| {
            settings.upstream = Some(format!("http://{upstream}").parse().unwrap());
            settings.change_poll_interval = Duration::from_secs(60);
            settings.max_staleness = Duration::from_secs(120);
        })
        .await;
        if let Some(role) = &role {
            role.grant_feed(false).await;
        }
        HeldFeed { front, role }
    }

    /// Lets the feed move again and applies what it says.
    async fn release(&self) {
        if let Some(role) = &self.role {
            role.grant_feed(true).await;
        }
        self.front.state.service.apply_changes().await.unwrap();
    }

    /// Whether the front server has not applied everything written so far
    /// (it has not while the feed is held).
    async fn is_behind(&self, node: &TestApp) -> bool {
        let written = node.state.service.store().latest_change_id().await.unwrap();
        self.front.state.service.applied_change_id() < written
    }
}

/// A PostgreSQL role for the front server: every right on the test's schema,
/// and reading `changes` only while granted. Dropped with the value.
struct FeedRole {
    name: String,
    url: String,
    admin_url: String,
}

impl FeedRole {
    async fn create(admin_url: &str) -> FeedRole {
        let schema = admin_url
            .split("search_path]=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .expect("the test schema's URL names its search path")
            .to_owned();
        let name = format!("{schema}_front");
        // With a password, so that it logs in wherever the test's own user
        // does (trust or password authentication).
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut connection = connect(admin_url).await;
        for statement in [
            format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"),
            format!("GRANT USAGE, CREATE ON SCHEMA {schema} TO {name}"),
            format!("GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {name}"),
            format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {name}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        let (scheme, rest) = admin_url.split_once("://").unwrap();
        let (_, host) = rest.split_once('@').expect("the test URL names its user");
        FeedRole {
            url: format!("{scheme}://{name}:{password}@{host}"),
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    async fn grant_feed(&self, granted: bool) {
        let statement = if granted {
            format!("GRANT SELECT ON changes TO {}", self.name)
        } else {
            format!("REVOKE SELECT ON changes FROM {}", self.name)
        };
        let mut connection = connect(&self.admin_url).await;
        sqlx::query(&statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
}

impl Drop for FeedRole {
    fn drop(&mut self) {
        let name = &self.name;
        let statements = vec![format!("DROP OWNED BY {name}"), format!("DROP ROLE {name}")];
        if !execute_detached(self.admin_url.clone(), statements) {
            eprintln!("could not drop the test role {name}");
        }
    }
}

async fn connect(url: &str) -> sqlx::PgConnection {
    PgConnectOptions::from_str(url)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn get(front: &TestApp, path: &str, key: &TestKey, token: &str) -> reqwest::Response {
    get_through(&front.address, path, &key.key, token, None).await
}

/// A key of `node` with a token (the login made on `node`, so the front
/// server has never read the key), and a sibling key of the same application.
async fn key_token_and_sibling(node: &TestApp) -> (TestKey, String, TestKey) {
    let (key, token) = logged_in(node).await;
    let sibling = node
        .create_key_in(Environment::Production, Some(&key.application))
        .await;
    (key, token, sibling)
}

backend_tests! {
    async fn a_key_read_as_disabled_before_the_feed_says_so_refuses_its_tokens_everywhere(backend) {
        let node = TestApp::spawn(backend).await;
        let held = HeldFeed::start(backend, &node).await;
        let front = &held.front;
        let (key, token, sibling) = key_token_and_sibling(&node).await;
        assert!(reached_upstream(get(front, "/v2/things", &sibling, &token).await).await);

        node.admin.set_api_key_disabled(&key.id, true).await.unwrap();
        assert!(held.is_behind(&node).await, "the front server's feed is held");
        // The front server reads the key now: it is disabled.
        refused(get(front, "/v2/things", &key, &token).await, 401, "api_key_disabled").await;
        // Its token through a sibling is refused at once, the feed still held.
        refused(get(front, "/v2/things", &sibling, &token).await, 401, "token_revoked").await;
        refused(get(front, "/auth/verify", &sibling, &token).await, 401, "token_revoked").await;
        assert!(held.is_behind(&node).await, "the front server's feed is held");

        // Enabled again: once the feed tells the front server, the token
        // works through both keys (a read never undoes what the feed says).
        node.admin.set_api_key_disabled(&key.id, false).await.unwrap();
        held.release().await;
        assert!(reached_upstream(get(front, "/v2/things", &sibling, &token).await).await);
        assert!(reached_upstream(get(front, "/v2/things", &key, &token).await).await);
        let verify = get(front, "/auth/verify", &key, &token).await;
        assert_eq!(verify.status(), 200);
        held.front.stop().await;
    }

    async fn a_key_read_as_revoked_before_the_feed_says_so_refuses_its_tokens_everywhere(backend) {
        let node = TestApp::spawn(backend).await;
        let held = HeldFeed::start(backend, &node).await;
        let front = &held.front;
        let (key, token, sibling) = key_token_and_sibling(&node).await;
        assert!(reached_upstream(get(front, "/v2/things", &sibling, &token).await).await);

        node.admin.revoke_api_key(&key.id, None).await.unwrap();
        assert!(held.is_behind(&node).await, "the front server's feed is held");
        refused(get(front, "/v2/things", &key, &token).await, 401, "api_key_revoked").await;
        refused(get(front, "/v2/things", &sibling, &token).await, 401, "token_revoked").await;
        refused(get(front, "/auth/verify", &sibling, &token).await, 401, "token_revoked").await;

        // The feed agrees once it moves: the session was revoked with the key.
        held.release().await;
        refused(get(front, "/v2/things", &sibling, &token).await, 401, "token_revoked").await;
        // Housekeeping drops what the read added once the feed has surely
        // caught up (the maximum staleness and a minute): the session the
        // feed revoked keeps the token refused.
        front.clock.advance(chrono::Duration::seconds(181));
        front.state.service.housekeeping().await.unwrap();
        refused(get(front, "/v2/things", &sibling, &token).await, 401, "token_revoked").await;
        held.front.stop().await;
    }
}
