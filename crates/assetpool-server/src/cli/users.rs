//! `assetpool users ...`

use super::backend::Backend;
use super::output::{print_json, print_table, say, time};
use super::scope_args::{describe, ScopeArgs, ScopeUpdateArgs};
use super::{read_password_from_stdin, require_password_stdin, Context};
use assetpool_wire::LoginFailureResponse;
use chrono::SecondsFormat;
use clap::Subcommand;

/// User commands. `create` and `set-password` read the new password from
/// standard input and need the global `--password-stdin`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Creates a user; the password is the first line of standard input.
    Create {
        /// Email address (the username).
        #[arg(long)]
        email: String,
        /// Allow the admin API.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        scopes: ScopeArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Changes a user's scopes (the scopes given replace the set; the user's
    /// live sessions granted a scope outside it are revoked).
    Update {
        /// Email address.
        email: String,
        #[command(flatten)]
        scopes: ScopeUpdateArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replaces a user's password (first line of standard input) and ends their sessions.
    SetPassword {
        /// Email address.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disables a user and ends their sessions.
    Disable {
        /// Email address.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enables a disabled user.
    Enable {
        /// Email address.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows failed-login counters (of one account and its addresses, or all).
    Attempts {
        /// Email address (default: every account and address).
        email: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clears an account's failed-login counters on every server, ending its throttling.
    Unlock {
        /// Email address.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_attempts(entries: &[LoginFailureResponse], json: bool) -> anyhow::Result<()> {
    if json {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|entry| {
                serde_json::json!({
                    "scope": entry.scope,
                    "account": entry.account,
                    "address": entry.address,
                    "failures": entry.failures,
                    "lastFailure": entry.last_failure.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "apiKey": entry.api_key,
                })
            })
            .collect();
        return print_json(&entries);
    }
    if entries.is_empty() {
        say!("No failed logins recorded.");
        return Ok(());
    }
    let or_any = |text: &Option<String>| text.clone().unwrap_or_else(|| "*".to_owned());
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                entry.scope.clone(),
                or_any(&entry.account),
                or_any(&entry.address),
                entry.failures.to_string(),
                time(Some(entry.last_failure)),
                entry.api_key.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    print_table(
        &[
            "SCOPE",
            "ACCOUNT",
            "ADDRESS",
            "FAILURES",
            "LAST FAILURE",
            "API KEY",
        ],
        &rows,
    );
    Ok(())
}

fn done(json: bool, email: &str, what: &str) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({"email": email.trim().to_lowercase(), "result": what}))
    } else {
        say!("User {}: {what}.", email.trim());
        Ok(())
    }
}

/// `users create`.
async fn create(
    context: &Context,
    email: &str,
    admin: bool,
    scopes: &ScopeArgs,
    json: bool,
) -> anyhow::Result<()> {
    require_password_stdin("users create", context.password_stdin)?;
    let scopes = scopes.set()?;
    let backend = context.backend_keeping_stdin().await?;
    let password = read_password_from_stdin()?;
    let user = backend.create_user(email, password, admin, scopes).await?;
    if json {
        return print_json(&user);
    }
    let role = if user.admin { "admin" } else { "user" };
    say!("Created {role} {} ({}).", user.email, user.id);
    say!("  scopes: {}", describe(user.scopes.as_deref()));
    Ok(())
}

/// `users update`.
async fn update(
    context: &Context,
    email: &str,
    scopes: &ScopeUpdateArgs,
    json: bool,
) -> anyhow::Result<()> {
    let Some(scopes) = scopes.change()? else {
        anyhow::bail!("nothing to change: give --scope (repeatable) or --scopes none");
    };
    let changed = context
        .backend()
        .await?
        .set_user_scopes(email, scopes)
        .await?;
    if json {
        return print_json(&changed.user);
    }
    let user = &changed.user;
    say!("Updated user {} ({}).", user.email, user.id);
    say!("  scopes: {}", describe(user.scopes.as_deref()));
    if changed.sessions_revoked > 0 {
        say!(
            "  {} session{} granted a scope outside the new set revoked.",
            changed.sessions_revoked,
            if changed.sessions_revoked == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    Ok(())
}

/// `users unlock`.
async fn unlock(context: &Context, email: &str, json: bool) -> anyhow::Result<()> {
    let cleared = context.backend().await?.unlock_user(email).await?;
    if json {
        return print_json(&serde_json::json!({
            "email": email.trim().to_lowercase(),
            "result": "unlocked",
            "clearedCounters": cleared,
        }));
    }
    say!(
        "User {}: unlocked ({cleared} failed-login counter{} cleared).",
        email.trim(),
        if cleared == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Runs a user command.
pub async fn run(context: &Context, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create {
            email,
            admin,
            scopes,
            json,
        } => create(context, &email, admin, &scopes, json).await,
        UsersCommand::Update {
            email,
            scopes,
            json,
        } => update(context, &email, &scopes, json).await,
        UsersCommand::SetPassword { email, json } => {
            require_password_stdin("users set-password", context.password_stdin)?;
            let backend = context.backend_keeping_stdin().await?;
            let password = read_password_from_stdin()?;
            backend.set_password(&email, password).await?;
            done(json, &email, "password changed, sessions revoked")
        }
        UsersCommand::Disable { email, json } => {
            context
                .backend()
                .await?
                .set_user_disabled(&email, true)
                .await?;
            done(json, &email, "disabled, sessions revoked")
        }
        UsersCommand::Enable { email, json } => {
            context
                .backend()
                .await?
                .set_user_disabled(&email, false)
                .await?;
            done(json, &email, "enabled")
        }
        UsersCommand::List { json } => list(&context.backend().await?, json).await,
        UsersCommand::Attempts { email, json } => {
            let entries = context
                .backend()
                .await?
                .login_failures(email.as_deref())
                .await?;
            print_attempts(&entries, json)
        }
        UsersCommand::Unlock { email, json } => unlock(context, &email, json).await,
    }
}

/// `users list`.
async fn list(backend: &Backend, json: bool) -> anyhow::Result<()> {
    let users = backend.list_users().await?;
    if json {
        return print_json(&users);
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|user| {
            vec![
                user.id.clone(),
                user.email.clone(),
                if user.admin { "yes" } else { "no" }.to_owned(),
                if user.disabled { "disabled" } else { "active" }.to_owned(),
                time(Some(user.created_at)),
                describe(user.scopes.as_deref()),
            ]
        })
        .collect();
    print_table(
        &["ID", "EMAIL", "ADMIN", "STATUS", "CREATED", "SCOPES"],
        &rows,
    );
    Ok(())
}
