//! `assetpool applications ...`

use super::output::{print_json, print_table, say, time};
use super::Context;
use assetpool_core::ids::ApplicationId;
use assetpool_core::store::ApplicationUpdate;
use assetpool_core::ApplicationRole;
use assetpool_wire::ApplicationResponse;
use clap::builder::BoolishValueParser;
use clap::Subcommand;

/// Application commands.
#[derive(Debug, Subcommand)]
pub enum ApplicationsCommand {
    /// Lists applications with their members.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows one application with its members.
    Show {
        /// Application id.
        id: ApplicationId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Creates an application (add keys with `keys create --application`).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Let only the application's members log in through its keys.
        #[arg(long, value_name = "true|false", value_parser = BoolishValueParser::new())]
        members_only: Option<bool>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Changes an application's name or members-only flag (switching it on
    /// ends the sessions of non-members within a second).
    Update {
        /// Application id.
        id: ApplicationId,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// Let only the application's members log in through its keys.
        #[arg(long, value_name = "true|false", value_parser = BoolishValueParser::new())]
        members_only: Option<bool>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Adds a user to an application's members, or changes a member's role.
    AddMember {
        /// Application id.
        id: ApplicationId,
        /// The user's email.
        email: String,
        /// The member's role.
        #[arg(long, value_name = "owner|member", default_value = "member",
              value_parser = parse_role)]
        role: ApplicationRole,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes a user from an application's members (in a members-only
    /// application, their sessions there end within a second).
    RemoveMember {
        /// Application id.
        id: ApplicationId,
        /// The member's email.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(text: &str) -> Result<ApplicationRole, String> {
    ApplicationRole::parse(text).map_err(|error| error.to_string())
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn print_application(application: &ApplicationResponse) {
    say!("id:            {}", application.id);
    say!("name:          {}", application.name);
    say!("members only:  {}", yes_no(application.members_only));
    say!("created:       {}", time(Some(application.created_at)));
    say!("members:       {}", application.members.len());
    if !application.members.is_empty() {
        say!();
        let rows: Vec<Vec<String>> = application
            .members
            .iter()
            .map(|member| vec![member.email.clone(), member.role.to_string()])
            .collect();
        print_table(&["EMAIL", "ROLE"], &rows);
    }
}

fn print_list(applications: &[ApplicationResponse], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&applications);
    }
    let rows: Vec<Vec<String>> = applications
        .iter()
        .map(|application| {
            vec![
                application.id.clone(),
                application.name.clone(),
                yes_no(application.members_only).to_owned(),
                application.members.len().to_string(),
                time(Some(application.created_at)),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "MEMBERS ONLY", "MEMBERS", "CREATED"], &rows);
    Ok(())
}

/// Prints `application` after `headline` (or as JSON).
fn print_changed(
    application: &ApplicationResponse,
    json: bool,
    headline: &str,
) -> anyhow::Result<()> {
    if json {
        return print_json(application);
    }
    say!("{headline}");
    print_application(application);
    Ok(())
}

/// Runs an application command.
pub async fn run(context: &Context, command: ApplicationsCommand) -> anyhow::Result<()> {
    let admin = context.backend().await?;
    match command {
        ApplicationsCommand::List { json } => print_list(&admin.list_applications().await?, json),
        ApplicationsCommand::Show { id, json } => {
            let application = admin.application(&id).await?;
            if json {
                return print_json(&application);
            }
            print_application(&application);
            Ok(())
        }
        ApplicationsCommand::Create {
            name,
            members_only,
            json,
        } => {
            let application = admin
                .create_application(&name, members_only.unwrap_or(false))
                .await?;
            let headline = format!("Created application {}.", application.id);
            print_changed(&application, json, &headline)
        }
        ApplicationsCommand::Update {
            id,
            name,
            members_only,
            json,
        } => {
            let update = ApplicationUpdate { name, members_only };
            if update.is_empty() {
                anyhow::bail!("nothing to change: give --name or --members-only");
            }
            let application = admin.update_application(&id, update).await?;
            let headline = format!("Updated application {}.", application.id);
            print_changed(&application, json, &headline)
        }
        ApplicationsCommand::AddMember {
            id,
            email,
            role,
            json,
        } => {
            let application = admin.add_application_member(&id, &email, role).await?;
            let headline = format!(
                "{} is now {} of application {}.",
                email.trim().to_lowercase(),
                match role {
                    ApplicationRole::Owner => "an owner",
                    ApplicationRole::Member => "a member",
                },
                application.id
            );
            print_changed(&application, json, &headline)
        }
        ApplicationsCommand::RemoveMember { id, email, json } => {
            let application = admin.remove_application_member(&id, &email).await?;
            let headline = format!(
                "{} is no longer a member of application {}.",
                email.trim().to_lowercase(),
                application.id
            );
            print_changed(&application, json, &headline)
        }
    }
}
