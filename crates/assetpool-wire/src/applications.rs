//! Applications and their members: the shape `applications ... --json`
//! prints and the admin API serves, and the admin API's request bodies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a member may do in an application.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationRole {
    /// Owns the application (sees its keys, usage and alerts in the console).
    Owner,
    /// May log in through the application's keys when it is members-only.
    #[default]
    Member,
}

impl ApplicationRole {
    /// The lowercase name: `owner` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationRole::Owner => "owner",
            ApplicationRole::Member => "member",
        }
    }

    /// Accepts `owner` or `member` (any case, surrounding blanks ignored).
    pub fn parse(text: &str) -> Result<Self, ParseApplicationRoleError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "owner" => Ok(ApplicationRole::Owner),
            "member" => Ok(ApplicationRole::Member),
            _ => Err(ParseApplicationRoleError),
        }
    }
}

impl fmt::Display for ApplicationRole {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for ApplicationRole {
    type Err = ParseApplicationRoleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ApplicationRole::parse(text)
    }
}

/// A role that is neither `owner` nor `member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseApplicationRoleError;

impl fmt::Display for ParseApplicationRoleError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("the role must be owner or member")
    }
}

impl std::error::Error for ParseApplicationRoleError {}

/// A member of an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationMemberResponse {
    /// The user's email (lowercase).
    pub email: String,
    /// `owner` or `member`.
    pub role: ApplicationRole,
}

/// An application: the owner of API keys, with its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationResponse {
    /// Application id (the `application` of its keys).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether only its members may log in through its keys.
    pub members_only: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Its members, by email.
    pub members: Vec<ApplicationMemberResponse>,
}

/// `POST /admin/applications`: create an application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCreateApplicationRequest {
    /// Display name (1 to 200 printable characters).
    pub name: String,
    /// Whether only its members may log in through its keys (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_only: Option<bool>,
}

/// `PATCH /admin/applications/{id}`: the fields given change, the others stay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUpdateApplicationRequest {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether only its members may log in through its keys. Switching it on
    /// ends the sessions of everyone else in the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_only: Option<bool>,
}

/// `POST /admin/applications/{id}/members`: add a member, or change the
/// role of one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminAddMemberRequest {
    /// The user's email.
    pub email: String,
    /// `owner` or `member` (default `member`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ApplicationRole>)]
    pub role: Option<String>,
}

/// One page of applications, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPage {
    /// The applications.
    pub items: Vec<ApplicationResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print_lowercase() {
        assert_eq!(
            ApplicationRole::parse(" Owner "),
            Ok(ApplicationRole::Owner)
        );
        assert_eq!(
            ApplicationRole::parse("member"),
            Ok(ApplicationRole::Member)
        );
        assert!(ApplicationRole::parse("admin").is_err());
        assert_eq!(
            serde_json::to_string(&ApplicationRole::Owner).unwrap(),
            "\"owner\""
        );
        assert_eq!(ApplicationRole::default(), ApplicationRole::Member);
    }

    #[test]
    fn an_application_is_camel_case() {
        let application = ApplicationResponse {
            id: "app_1".into(),
            name: "shop".into(),
            members_only: true,
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
            members: vec![ApplicationMemberResponse {
                email: "a@example.test".into(),
                role: ApplicationRole::Owner,
            }],
        };
        let value = serde_json::to_value(&application).unwrap();
        assert_eq!(value["membersOnly"], true);
        assert_eq!(value["createdAt"], "1970-01-01T00:00:00Z");
        assert_eq!(value["members"][0]["role"], "owner");
    }
}
