//! `assetpool users ...`

use super::output::{print_json, print_table, time};
use super::{read_password_from_stdin, Context};
use clap::Subcommand;

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Creates a user; the password is the first line of standard input.
    Create {
        /// Email address (the username).
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords are never taken from arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Allow the admin API.
        #[arg(long)]
        admin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replaces a user's password (first line of standard input) and ends their sessions.
    SetPassword {
        /// Email address.
        email: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
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
}

fn done(json: bool, email: &str, what: &str) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({"email": email.trim().to_lowercase(), "result": what}))
    } else {
        println!("User {}: {what}.", email.trim());
        Ok(())
    }
}

/// Runs a user command.
pub async fn run(context: &Context, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create {
            email, admin, json, ..
        } => {
            let password = read_password_from_stdin()?;
            let user = context
                .admin()
                .await?
                .create_user(&email, password, admin)
                .await?;
            if json {
                return print_json(&user);
            }
            let role = if user.admin { "admin" } else { "user" };
            println!("Created {role} {} ({}).", user.email, user.id);
            Ok(())
        }
        UsersCommand::SetPassword { email, json, .. } => {
            let password = read_password_from_stdin()?;
            context
                .admin()
                .await?
                .set_password(&email, password)
                .await?;
            done(json, &email, "password changed, sessions revoked")
        }
        UsersCommand::Disable { email, json } => {
            context
                .admin()
                .await?
                .set_user_disabled(&email, true)
                .await?;
            done(json, &email, "disabled, sessions revoked")
        }
        UsersCommand::Enable { email, json } => {
            context
                .admin()
                .await?
                .set_user_disabled(&email, false)
                .await?;
            done(json, &email, "enabled")
        }
        UsersCommand::List { json } => {
            let users = context.admin().await?.list_users().await?;
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
                    ]
                })
                .collect();
            print_table(&["ID", "EMAIL", "ADMIN", "STATUS", "CREATED"], &rows);
            Ok(())
        }
    }
}
