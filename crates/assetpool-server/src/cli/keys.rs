//! `assetpool keys ...`

use super::backend::Backend;
use super::durations::Seconds;
use super::key_lifecycle::{self, KeyProfileArgs, KeyProfileUpdateArgs};
use super::output::{print_json, print_table, say, time};
use super::scope_args::{describe, ScopeArgs, ScopeUpdateArgs};
use super::{usage, Context};
use assetpool_core::admin::{
    Admin, CreateApiKey, DEFAULT_ROTATION_GRACE_SECONDS, MAX_ROTATION_GRACE_SECONDS,
};
use assetpool_core::ids::{ApplicationId, KeyId};
use assetpool_core::limits::{KeyLimits, LimitParseError, Quota, RateLimit, RateSpec};
use assetpool_core::store::ApiKeyUpdate;
use assetpool_core::{Environment, ScopeSet};
use assetpool_wire::{
    AdminUpdateKeyRequest, AdminUpdateKeyResponse, ApiKeyCreatedResponse, ApiKeyResponse,
};
use clap::Subcommand;
use secrecy::{ExposeSecret as _, SecretString};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issues a key and prints its secret once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Environment: development, staging, production (or dev, stg, prod).
        #[arg(long = "env", value_parser = Environment::parse)]
        environment: Environment,
        /// Existing application to add the key to (default: a new application).
        #[arg(long)]
        application: Option<ApplicationId>,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long, value_name = "SECONDS", value_parser = Seconds::within(1..=3_153_600_000))]
        expires_in: Option<u64>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        profile: KeyProfileArgs,
        #[command(flatten)]
        scopes: ScopeArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Changes a key's name, limits, expiry, metadata, owner, allow-list or
    /// scopes (servers apply it within a second; narrowed scopes to its live
    /// tokens too).
    Update {
        /// Key id.
        id: KeyId,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        profile: KeyProfileUpdateArgs,
        #[command(flatten)]
        scopes: ScopeUpdateArgs,
        /// Owner webhook receiving this key's alerts (`none` removes it); a new
        /// signing secret is printed once.
        #[arg(long, value_name = "URL|none", value_parser = parse_webhook)]
        webhook: Option<Setting<String>>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows a key's requests, logins and client addresses over a period.
    Usage(usage::UsageArgs),
    /// Lists keys.
    List {
        /// Only keys of this environment.
        #[arg(long = "env", value_parser = Environment::parse)]
        environment: Option<Environment>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows one key.
    Show {
        /// Key id.
        id: KeyId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revokes a key at once.
    Revoke {
        /// Key id.
        id: KeyId,
        /// Why (kept with the key).
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Says which candidate keys (one per line on stdin) are keys of this
    /// service; never prints a candidate.
    CheckLeak {
        /// Revoke the live keys found (audited).
        #[arg(long)]
        revoke: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disables a key until `keys enable`: it and the tokens of the sessions
    /// opened through it are refused (every server within a second).
    Disable {
        /// Key id.
        id: KeyId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enables a disabled key again, with the live tokens of its sessions.
    Enable {
        /// Key id.
        id: KeyId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issues a successor key; the old one works until the grace period ends.
    Rotate {
        /// Key id.
        id: KeyId,
        /// Seconds the old key keeps working (0 rejects it at once).
        #[arg(long, default_value_t = DEFAULT_ROTATION_GRACE_SECONDS as u64,
              value_name = "SECONDS", value_parser = Seconds::within(0..=MAX_ROTATION_GRACE_SECONDS))]
        grace: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--rate`, `--burst` and `--quota`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Sustained request rate: COUNT/s, COUNT/min or COUNT/h (`none` removes it).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    rate: Option<Setting<RateSpec>>,
    /// Requests allowed at once (default: the rate's count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    burst: Option<u32>,
    /// Quota per calendar period (UTC): COUNT/hour, COUNT/day or COUNT/month (`none` removes it).
    #[arg(long, value_name = "QUOTA", value_parser = parse_quota)]
    quota: Option<Setting<Quota>>,
}

/// A limit (or webhook, expiry, metadata, owner) to set or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting<T> {
    /// Set to this.
    Set(T),
    /// Remove it (`none`).
    Remove,
}

impl<T> Setting<T> {
    /// `Some(value)` to set, `None` to remove.
    pub fn into_option(self) -> Option<T> {
        match self {
            Setting::Set(value) => Some(value),
            Setting::Remove => None,
        }
    }
}

fn parse_setting<T: std::str::FromStr<Err = LimitParseError>>(
    text: &str,
) -> Result<Setting<T>, String> {
    if matches!(text.trim().to_ascii_lowercase().as_str(), "none" | "off") {
        return Ok(Setting::Remove);
    }
    text.parse()
        .map(Setting::Set)
        .map_err(|error: LimitParseError| error.to_string())
}

fn parse_rate(text: &str) -> Result<Setting<RateSpec>, String> {
    parse_setting(text)
}

fn parse_quota(text: &str) -> Result<Setting<Quota>, String> {
    parse_setting(text)
}

fn parse_webhook(text: &str) -> Result<Setting<String>, String> {
    if matches!(text.trim().to_ascii_lowercase().as_str(), "none" | "off") {
        return Ok(Setting::Remove);
    }
    Ok(Setting::Set(text.to_owned()))
}

impl LimitArgs {
    fn is_empty(&self) -> bool {
        self.rate.is_none() && self.burst.is_none() && self.quota.is_none()
    }

    /// Adds the options to an admin API body (the server applies them to
    /// the key's current limits, by the same rules as [`LimitArgs::apply`]).
    fn add_to(&self, request: &mut AdminUpdateKeyRequest) {
        request.rate_limit = self.rate.map(|rate| match rate {
            Setting::Set(spec) => Some(spec.with_burst(None).to_string()),
            Setting::Remove => None,
        });
        request.burst = self.burst;
        request.quota = self.quota.map(|quota| match quota {
            Setting::Set(quota) => Some(quota.to_string()),
            Setting::Remove => None,
        });
    }

    /// Applies the options to `current`.
    fn apply(&self, current: KeyLimits) -> anyhow::Result<KeyLimits> {
        let rate = match (self.rate, self.burst) {
            (Some(Setting::Set(spec)), burst) => Some(spec.with_burst(burst)),
            (Some(Setting::Remove), None) => None,
            (Some(Setting::Remove), Some(_)) => {
                anyhow::bail!("--burst cannot be combined with --rate none")
            }
            (None, Some(burst)) => match current.rate {
                Some(rate) => Some(RateLimit { burst, ..rate }),
                None => anyhow::bail!("--burst needs a rate: give --rate too"),
            },
            (None, None) => current.rate,
        };
        let quota = match self.quota {
            Some(Setting::Set(quota)) => Some(quota),
            Some(Setting::Remove) => None,
            None => current.quota,
        };
        Ok(KeyLimits { rate, quota })
    }
}

/// `value` seconds as a duration (saturating).
pub(super) fn seconds(value: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX / 1000))
}

fn print_issued(response: &ApiKeyCreatedResponse, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        return print_json(response);
    }
    say!("{verb} API key {} ({})", response.id, response.name);
    say!("  environment:  {}", response.environment);
    say!("  application:  {}", response.application);
    say!("  expires:      {}", time(response.expires_at));
    say!("  scopes:       {}", describe(response.scopes.as_deref()));
    say!();
    say!("  key: {}", response.key);
    say!();
    say!("Store the key now: it is not shown again.");
    Ok(())
}

/// Prints a key's fields, one per line.
pub(super) fn print_key(key: &ApiKeyResponse) {
    say!("id:           {}", key.id);
    say!("name:         {}", key.name);
    say!("prefix:       {}", key.prefix);
    say!("environment:  {}", key.environment);
    say!("application:  {}", key.application);
    say!("status:       {}", key.status);
    say!("created:      {}", time(Some(key.created_at)));
    say!("expires:      {}", time(key.expires_at));
    say!("last used:    {}", time(key.last_used_at));
    if let Some(revoked_at) = key.revoked_at {
        say!("revoked:      {}", time(Some(revoked_at)));
    }
    if let Some(reason) = &key.revoked_reason {
        say!("reason:       {reason}");
    }
    if let Some(successor) = &key.successor {
        say!("successor:    {successor}");
    }
    if let Some(rate) = &key.rate_limit {
        say!("rate limit:   {rate} (burst {})", key.burst.unwrap_or(0));
    }
    if let Some(quota) = &key.quota {
        say!("quota:        {quota}");
    }
    if let Some(disabled_at) = key.disabled_at {
        say!("disabled:     {}", time(Some(disabled_at)));
    }
    if let Some(owner) = &key.owner {
        say!("owner:        {owner}");
    }
    if let Some(cidrs) = &key.allowed_cidrs {
        say!("allowed:      {}", cidrs.join(" "));
    }
    if let Some(metadata) = &key.metadata {
        say!(
            "metadata:     {}",
            serde_json::Value::Object(metadata.clone())
        );
    }
    say!("scopes:       {}", describe(key.scopes.as_deref()));
}

fn print_key_list(keys: &[ApiKeyResponse], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&keys);
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            vec![
                key.id.clone(),
                key.name.clone(),
                key.environment.to_string(),
                key.status.to_string(),
                key.prefix.clone(),
                time(key.expires_at),
                time(key.last_used_at),
                describe(key.scopes.as_deref()),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "NAME",
            "ENVIRONMENT",
            "STATUS",
            "PREFIX",
            "EXPIRES",
            "LAST USED",
            "SCOPES",
        ],
        &rows,
    );
    Ok(())
}

/// The options of `keys update`.
struct KeyUpdate {
    name: Option<String>,
    limits: LimitArgs,
    profile: KeyProfileUpdateArgs,
    scopes: ScopeUpdateArgs,
    webhook: Option<Setting<String>>,
}

/// `keys update`: the options given change; the others stay.
async fn update(
    backend: &Backend,
    id: &KeyId,
    options: KeyUpdate,
    json: bool,
) -> anyhow::Result<()> {
    if options.is_empty() {
        anyhow::bail!(
            "nothing to change: give --name, --rate, --burst, --quota, --expires-in, --metadata, \
             --owner, --allow-cidr, --allow-cidrs none, --scope, --scopes none or --webhook"
        );
    }
    let webhook = options.webhook.clone();
    let (key, secret) = match backend {
        Backend::Direct(admin) => update_direct(admin, id, options).await?,
        Backend::Remote(remote) => {
            let body = options.to_request()?;
            let answer: AdminUpdateKeyResponse = remote.patch(&key_path(id), &body).await?;
            (answer.key, answer.webhook_secret.map(SecretString::from))
        }
    };
    if json {
        return print_updated_json(&key, secret.as_ref());
    }
    say!("Updated API key {} ({}).", key.id, key.name);
    print_key(&key);
    match (&webhook, &secret) {
        (Some(Setting::Set(_)), Some(secret)) => {
            say!("webhook secret: {} (shown once)", secret.expose_secret());
        }
        (Some(Setting::Remove), _) => say!("webhook:      removed"),
        _ => {}
    }
    Ok(())
}

impl KeyUpdate {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.limits.is_empty()
            && self.profile.is_empty()
            && self.scopes.is_empty()
            && self.webhook.is_none()
    }

    /// The body of `PATCH /admin/keys/{id}` (`--server`): the server applies
    /// the limits to the key's current ones, as [`update_direct`] does.
    fn to_request(&self) -> anyhow::Result<AdminUpdateKeyRequest> {
        let mut request = AdminUpdateKeyRequest {
            name: self.name.clone(),
            scopes: self
                .scopes
                .change()?
                .map(|scopes| scopes.as_ref().map(ScopeSet::to_vec)),
            webhook: self.webhook.clone().map(Setting::into_option),
            ..AdminUpdateKeyRequest::default()
        };
        self.limits.add_to(&mut request);
        self.profile.add_to(&mut request, chrono::Utc::now())?;
        Ok(request)
    }
}

/// `keys update` on the database: the key and a new webhook's secret.
async fn update_direct(
    admin: &Admin,
    id: &KeyId,
    options: KeyUpdate,
) -> anyhow::Result<(ApiKeyResponse, Option<SecretString>)> {
    let KeyUpdate {
        name,
        limits,
        profile,
        scopes,
        webhook,
    } = options;
    let mut update = ApiKeyUpdate {
        name,
        scopes: scopes.change()?,
        ..ApiKeyUpdate::default()
    };
    profile.apply(admin.now(), &mut update)?;
    if !limits.is_empty() {
        update.limits = Some(limits.apply(admin.api_key_limits(id).await?)?);
    }
    let key = if update.is_empty() {
        admin.api_key(id).await?
    } else {
        admin.update_api_key(id, update).await?
    };
    let secret = match &webhook {
        Some(Setting::Set(url)) => admin.set_key_webhook(id, Some(url)).await?,
        Some(Setting::Remove) => admin.set_key_webhook(id, None).await?,
        None => None,
    };
    Ok((key, secret))
}

/// `/admin/keys/{id}`.
fn key_path(id: &KeyId) -> String {
    format!("/admin/keys/{}", super::remote::segment(id.as_str()))
}

/// The key's JSON, with `webhookSecret` when a webhook secret was just created.
fn print_updated_json(key: &ApiKeyResponse, secret: Option<&SecretString>) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(key)?;
    if let (Some(secret), Some(object)) = (secret, value.as_object_mut()) {
        object.insert(
            "webhookSecret".to_owned(),
            serde_json::Value::String(secret.expose_secret().to_owned()),
        );
    }
    print_json(&value)
}

/// What `keys create` asks for.
fn new_key_request(
    name: String,
    environment: Environment,
    application_id: Option<ApplicationId>,
    expires_in: Option<u64>,
    limits: &LimitArgs,
    profile: KeyProfileArgs,
    scopes: ScopeArgs,
) -> anyhow::Result<CreateApiKey> {
    let (metadata, owner, allowed_networks) = profile.into_parts()?;
    Ok(CreateApiKey {
        name,
        environment,
        application_id,
        expires_in: expires_in.map(seconds),
        limits: limits.apply(KeyLimits::default())?,
        metadata,
        owner,
        allowed_networks,
        scopes: scopes.set()?,
    })
}

/// Runs a key command.
// One short arm per command: splitting the dispatch would only scatter it.
#[allow(clippy::too_many_lines)]
pub async fn run(context: &Context, command: KeysCommand) -> anyhow::Result<()> {
    let backend = context.backend().await?;
    match command {
        KeysCommand::Create {
            name,
            environment,
            application,
            expires_in,
            limits,
            profile,
            scopes,
            json,
        } => {
            let request = new_key_request(
                name,
                environment,
                application,
                expires_in,
                &limits,
                profile,
                scopes,
            )?;
            let issued = backend.create_api_key(request).await?;
            print_issued(&issued, json, "Created")
        }
        KeysCommand::Update {
            id,
            name,
            limits,
            profile,
            scopes,
            webhook,
            json,
        } => {
            let options = KeyUpdate {
                name,
                limits,
                profile,
                scopes,
                webhook,
            };
            update(&backend, &id, options, json).await
        }
        KeysCommand::Disable { id, json } => {
            key_lifecycle::set_disabled(&backend, &id, true, json).await
        }
        KeysCommand::Enable { id, json } => {
            key_lifecycle::set_disabled(&backend, &id, false, json).await
        }
        KeysCommand::Usage(args) => usage::run(&backend, args).await,
        KeysCommand::List { environment, json } => {
            print_key_list(&backend.list_api_keys(environment).await?, json)
        }
        KeysCommand::Show { id, json } => {
            let key = backend.api_key(&id).await?;
            if json {
                return print_json(&key);
            }
            print_key(&key);
            Ok(())
        }
        KeysCommand::Revoke { id, reason, json } => {
            let key = backend.revoke_api_key(&id, reason.as_deref()).await?;
            if json {
                return print_json(&key);
            }
            say!("Revoked API key {} ({}).", key.id, key.name);
            Ok(())
        }
        KeysCommand::CheckLeak { revoke, json } => {
            super::leaks::check_leak(&backend, json, revoke).await
        }
        KeysCommand::Rotate { id, grace, json } => {
            let issued = backend.rotate_api_key(&id, grace).await?;
            if !json {
                if grace == 0 {
                    say!("The old key {id} is rejected from now on.");
                } else {
                    say!("The old key {id} keeps working for {grace} seconds.");
                }
            }
            print_issued(&issued, json, "Issued successor")
        }
    }
}
