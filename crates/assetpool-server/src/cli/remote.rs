//! `--server URL`: the admin commands over the admin HTTP API of a running
//! server, through `assetpool-client` (login, token renewal, retries).
//!
//! The admin logs in with `ASSETPOOL_API_KEY` (or `ASSETPOOL_API_KEY_FILE`),
//! `ASSETPOOL_USERNAME` and the password of `ASSETPOOL_PASSWORD` or, with
//! `--password-stdin`, the first line of standard input. A refusal of the
//! server becomes the error the same operation gives on the database
//! (`code: message`), so both forms print the same line.

use super::{layers, read_password_from_stdin, secret_args};
use assetpool_client::{Client, Credentials, Error};
use assetpool_core::ServiceError;
use assetpool_wire::ErrorCode;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The environment variable naming the admin.
const USERNAME_ENV: &str = "ASSETPOOL_USERNAME";
/// The environment variable holding the admin's password.
const PASSWORD_ENV: &str = "ASSETPOOL_PASSWORD";
/// Entries asked for per page when a list is read whole.
const PAGE_SIZE: &str = "500";

/// Where the admin's password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPassword {
    /// The first line of standard input (`--password-stdin`).
    Stdin,
    /// `ASSETPOOL_PASSWORD` only (standard input is the command's own).
    Environment,
}

/// The admin API of one server, logged in as one admin.
pub struct RemoteAdmin {
    client: Client,
    server: String,
    username: String,
}

/// One page of a list of the admin API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// An empty body.
#[derive(Serialize)]
struct NoBody {}

impl RemoteAdmin {
    /// Logs in to `server` with the credentials of the environment.
    pub async fn connect(server: &str, password: AdminPassword) -> anyhow::Result<RemoteAdmin> {
        let server = server.trim().trim_end_matches('/').to_owned();
        let api_key = api_key()?;
        let username = std::env::var(USERNAME_ENV)
            .ok()
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("--server needs {USERNAME_ENV}: the email of an admin user")
            })?;
        let password = match password {
            AdminPassword::Stdin => read_password_from_stdin()?,
            AdminPassword::Environment => layers::secret_from_environment(PASSWORD_ENV)?
                .map(SecretString::from)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--server needs the admin's password: set {PASSWORD_ENV} or \
                         {PASSWORD_ENV}_FILE (or give --password-stdin where the command does \
                         not read stdin itself)"
                    )
                })?,
        };
        warn_if_plain_http(&server);
        let client = Client::builder(
            server.clone(),
            api_key.expose_secret().to_owned(),
            Credentials::new(username.clone(), password.expose_secret()),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| anyhow::anyhow!("--server {}: {error}", super::redact_url(&server)))?;
        // Messages name the server without a password its URL may hold.
        let server = super::redact_url(&server);
        let remote = RemoteAdmin {
            client,
            server,
            username,
        };
        if let Err(error) = remote.client.access_token().await {
            return Err(remote.login_error(error));
        }
        Ok(remote)
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None::<&NoBody>).await
    }

    /// `GET path?query`.
    pub async fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let request = self.client.get(path)?.query(query);
        self.send(request).await
    }

    /// `POST path` with a JSON body (an empty object when `None`).
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        match body {
            Some(body) => self.call(Method::POST, path, Some(body)).await,
            None => self.call(Method::POST, path, Some(&NoBody {})).await,
        }
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::DELETE, path, None::<&NoBody>).await
    }

    /// Every entry of a paginated list, page after page (`nextCursor`).
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<Vec<T>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut parameters = query.to_vec();
            parameters.push(("limit", PAGE_SIZE.to_owned()));
            if let Some(cursor) = cursor.take() {
                parameters.push(("cursor", cursor));
            }
            let page: Page<T> = self.get_with(path, &parameters).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// One page of a list kept as a sequence (alerts, audit): its entries and
    /// the position before which the next page starts.
    pub async fn sequence_page<T: DeserializeOwned>(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<(Vec<T>, Option<i64>)> {
        query.push(("limit", limit.to_string()));
        if let Some(before) = before {
            query.push(("cursor", before.to_string()));
        }
        let page: Page<T> = self.get_with(path, &query).await?;
        let next = page
            .next_cursor
            .map(|cursor| {
                cursor.parse::<i64>().map_err(|_| {
                    anyhow::anyhow!("unexpected answer from {}: a bad cursor", self.server)
                })
            })
            .transpose()?;
        Ok((page.items, next))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let mut request = self.client.request(method, path)?;
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = self
            .client
            .send(request)
            .await
            .map_err(|error| self.request_error(error))?;
        response.json().await.map_err(|_| {
            anyhow::anyhow!(
                "unexpected answer from {}: not the JSON of this command",
                self.server
            )
        })
    }

    /// A failed login: one line naming the server and the user, never the
    /// password or the API key.
    fn login_error(&self, error: Error) -> anyhow::Error {
        match error {
            Error::Transport(_) => self.unreachable(&error),
            Error::Api(refusal) if !refusal.error.is_empty() => anyhow::anyhow!(
                "cannot log in to {} as {}: {}: {}",
                self.server,
                self.username,
                refusal.error,
                refusal.message
            ),
            other => anyhow::anyhow!(
                "cannot log in to {} as {}: {other}",
                self.server,
                self.username
            ),
        }
    }

    /// A refused request: the error the same operation gives on the database.
    fn request_error(&self, error: Error) -> anyhow::Error {
        match error {
            Error::Transport(_) => self.unreachable(&error),
            Error::Api(refusal) => match refusal.code {
                Some(ErrorCode::Forbidden) => anyhow::anyhow!(
                    "{} may not use the admin API of {} (forbidden: not an admin user)",
                    self.username,
                    self.server
                ),
                Some(code) => ServiceError::refused_with(code, refusal.message).into(),
                None => anyhow::anyhow!(
                    "{} answered HTTP status {} (is it an assetpool server of this version?)",
                    self.server,
                    refusal.status
                ),
            },
            other => anyhow::anyhow!("{}: {other}", self.server),
        }
    }

    /// The server did not answer: the deepest cause (refused, timed out,
    /// name not found), which says most.
    fn unreachable(&self, error: &Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = error;
        while let Some(deeper) = cause.source() {
            cause = deeper;
        }
        anyhow::anyhow!("cannot reach the server {}: {cause}", self.server)
    }
}

/// A path segment (an id or an email), percent-encoded.
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// The API key of the environment: `ASSETPOOL_API_KEY`, or the file named by
/// `ASSETPOOL_API_KEY_FILE`.
fn api_key() -> anyhow::Result<SecretString> {
    layers::secret_from_environment(secret_args::API_KEY.env)?
        .map(|key| SecretString::from(key.trim().to_owned()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--server needs an API key: set ASSETPOOL_API_KEY or ASSETPOOL_API_KEY_FILE"
            )
        })
}

/// Warns (on stderr) when the admin's credentials would cross a network in
/// clear: `http://` to a host that is not this machine.
fn warn_if_plain_http(server: &str) {
    let Some(rest) = server.strip_prefix("http://") else {
        return;
    };
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|inside| inside.split(']').next())
        .unwrap_or_else(|| host.split(':').next().unwrap_or_default());
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if !loopback {
        eprintln!(
            "warning: --server {} is plain http: the API key, the admin's password and tokens \
             cross the network unencrypted (use https://)",
            super::redact_url(server)
        );
    }
}

/// The refusal of a command that has no form over `--server`.
pub fn not_remote(command: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("`{command}` {why}; it cannot run with --server")
}
