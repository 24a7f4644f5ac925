//! Applications as records: lists in creation order with their members,
//! changes, members, and whether an application admits a user to log in.
//! Whom an application admits is core's rule ([`ApplicationRecord::admits`]);
//! this reads the rows, asks, and writes. Every change locks the
//! application's row (opening a session share-locks it) and, when the
//! application is members-only afterwards, revokes and announces the
//! sessions of the users it no longer admits in the same transaction.

use super::rows::{self, map_error, millis};
use super::sessions::announce_revoked;
use crate::dialect::{Backend, Connection, Row};
use assetpool_core::clock::from_millis;
use assetpool_core::ids::{ApplicationId, UserId};
use assetpool_core::store::{
    ApplicationMember, ApplicationRecord, ApplicationStore, ApplicationUpdate,
    ApplicationWithMembers, CreationPage, StoreError, StoreResult,
};
use assetpool_core::ApplicationRole;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use std::collections::HashMap;

/// The application `$1` with `member` (1 or 0): whether user `$2` is a member.
macro_rules! admission_by_user {
    () => {
        "SELECT a.*, CASE WHEN EXISTS (SELECT 1 FROM application_members m \
         WHERE m.application_id = a.id AND m.user_id = $2) \
         THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END AS member \
         FROM applications a WHERE a.id = $1"
    };
}

/// Members with their emails, then the condition.
macro_rules! members_where {
    () => {
        "SELECT m.application_id, m.user_id, u.email, m.role, m.created_at \
         FROM application_members m JOIN users u ON u.id = m.user_id WHERE "
    };
}

/// Whether application `application_id` admits user `user_id` (false for an
/// unknown application), its row share-locked for the rest of the
/// transaction when `lock` is set.
pub(crate) async fn admits_user(
    connection: &mut Connection,
    application_id: &str,
    user_id: &str,
    lock: bool,
) -> StoreResult<bool> {
    let statement = if lock {
        concat!(admission_by_user!(), for_share!())
    } else {
        admission_by_user!()
    };
    let row = sqlx::query(statement)
        .bind(application_id)
        .bind(user_id)
        .fetch_optional(&mut *connection)
        .await
        .map_err(map_error)?;
    admitted(row.as_ref())
}

/// What a row of an admission query (`a.*` and `member`) says.
fn admitted(row: Option<&Row>) -> StoreResult<bool> {
    let Some(row) = row else {
        return Ok(false);
    };
    let member: i64 = row.try_get("member").map_err(map_error)?;
    Ok(rows::application(row)?.admits(member != 0))
}

fn member(row: &Row) -> StoreResult<(String, ApplicationMember)> {
    let role: String = row.try_get("role").map_err(map_error)?;
    let member = ApplicationMember {
        user_id: rows::id(row, "user_id")?,
        email: row.try_get("email").map_err(map_error)?,
        role: ApplicationRole::parse(&role)
            .map_err(|error| StoreError::Other(error.to_string()))?,
        created_at: from_millis(row.try_get("created_at").map_err(map_error)?),
    };
    Ok((row.try_get("application_id").map_err(map_error)?, member))
}

/// The members of application `id`, by email.
async fn members_of(
    connection: &mut Connection,
    id: &ApplicationId,
) -> StoreResult<Vec<ApplicationMember>> {
    let found = sqlx::query(concat!(
        members_where!(),
        "m.application_id = $1 ORDER BY u.email",
        collate_c!()
    ))
    .bind(id.as_str())
    .fetch_all(&mut *connection)
    .await
    .map_err(map_error)?;
    found
        .iter()
        .map(|row| member(row).map(|(_, member)| member))
        .collect()
}

/// The application `id`, its row locked for the rest of the transaction.
async fn locked_application(
    connection: &mut Connection,
    id: &ApplicationId,
) -> StoreResult<ApplicationRecord> {
    let row = sqlx::query(concat!(
        "SELECT * FROM applications WHERE id = $1",
        for_update!()
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *connection)
    .await
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)?;
    rows::application(&row)
}

/// Revokes and announces the live sessions of `application` whose user it
/// no longer admits (only those of `user`, when given).
async fn end_sessions_not_admitted(
    connection: &mut Connection,
    application: &ApplicationRecord,
    user: Option<&UserId>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if application.admits(false) {
        // It admits everyone: nobody's session ends.
        return Ok(());
    }
    let revoked = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE application_id = $2 AND revoked_at IS NULL \
         AND (CAST($3 AS TEXT) IS NULL OR user_id = $3) AND user_id NOT IN \
         (SELECT user_id FROM application_members WHERE application_id = $2) \
         RETURNING id, access_expires_at",
    )
    .bind(millis(now))
    .bind(application.id.as_str())
    .bind(user.map(UserId::as_str))
    .fetch_all(&mut *connection)
    .await
    .map_err(map_error)?;
    announce_revoked(connection, revoked, now).await
}

/// The application with its members, read in the transaction of `connection`.
async fn with_members(
    connection: &mut Connection,
    application: ApplicationRecord,
) -> StoreResult<ApplicationWithMembers> {
    let members = members_of(connection, &application.id).await?;
    Ok(ApplicationWithMembers {
        application,
        members,
    })
}

#[async_trait]
impl ApplicationStore for Backend {
    async fn list_applications(
        &self,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApplicationWithMembers>> {
        let (after_time, after_id) = page.after.as_ref().map_or((None, None), |(time, id)| {
            (Some(millis(*time)), Some(id.as_str()))
        });
        let mut transaction = self.read().await?;
        let found = sqlx::query(concat!(
            "SELECT * FROM applications WHERE CAST($1 AS BIGINT) IS NULL OR created_at > $1 \
             OR (created_at = $1 AND id",
            collate_c!(),
            " > $2) ORDER BY created_at, id",
            collate_c!(),
            " LIMIT $3"
        ))
        .bind(after_time)
        .bind(after_id)
        .bind(i64::from(page.limit))
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let member_rows = sqlx::query(concat!(
            members_where!(),
            "m.application_id IN (SELECT id FROM applications \
             WHERE CAST($1 AS BIGINT) IS NULL OR created_at > $1 OR (created_at = $1 AND id",
            collate_c!(),
            " > $2) ORDER BY created_at, id",
            collate_c!(),
            " LIMIT $3) ORDER BY u.email",
            collate_c!()
        ))
        .bind(after_time)
        .bind(after_id)
        .bind(i64::from(page.limit))
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        let mut members: HashMap<String, Vec<ApplicationMember>> = HashMap::new();
        for row in &member_rows {
            let (application_id, member) = member(row)?;
            members.entry(application_id).or_default().push(member);
        }
        found
            .iter()
            .map(|row| {
                let application = rows::application(row)?;
                let members = members.remove(application.id.as_str()).unwrap_or_default();
                Ok(ApplicationWithMembers {
                    application,
                    members,
                })
            })
            .collect()
    }

    async fn application_with_members(
        &self,
        id: &ApplicationId,
    ) -> StoreResult<Option<ApplicationWithMembers>> {
        let mut transaction = self.read().await?;
        let row = sqlx::query("SELECT * FROM applications WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let found = with_members(&mut transaction, rows::application(&row)?).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(Some(found))
    }

    async fn update_application(
        &self,
        id: &ApplicationId,
        update: &ApplicationUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationWithMembers> {
        let mut transaction = self.write().await?;
        let old = locked_application(&mut transaction, id).await?;
        let application = ApplicationRecord {
            name: update.name.clone().unwrap_or(old.name),
            members_only: update.members_only.unwrap_or(old.members_only),
            ..old
        };
        sqlx::query("UPDATE applications SET name = $1, members_only = $2 WHERE id = $3")
            .bind(&application.name)
            .bind(application.members_only)
            .bind(id.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        end_sessions_not_admitted(&mut transaction, &application, None, now).await?;
        let updated = with_members(&mut transaction, application).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(updated)
    }

    async fn set_application_member(
        &self,
        id: &ApplicationId,
        user_id: &UserId,
        role: ApplicationRole,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationWithMembers> {
        let mut transaction = self.write().await?;
        let application = locked_application(&mut transaction, id).await?;
        sqlx::query(
            "INSERT INTO application_members (application_id, user_id, role, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (application_id, user_id) \
             DO UPDATE SET role = excluded.role",
        )
        .bind(id.as_str())
        .bind(user_id.as_str())
        .bind(role.as_str())
        .bind(millis(now))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        let updated = with_members(&mut transaction, application).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(updated)
    }

    async fn remove_application_member(
        &self,
        id: &ApplicationId,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationWithMembers> {
        let mut transaction = self.write().await?;
        let application = locked_application(&mut transaction, id).await?;
        let removed = sqlx::query(
            "DELETE FROM application_members WHERE application_id = $1 AND user_id = $2",
        )
        .bind(id.as_str())
        .bind(user_id.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        if removed.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        end_sessions_not_admitted(&mut transaction, &application, Some(user_id), now).await?;
        let updated = with_members(&mut transaction, application).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(updated)
    }

    async fn application_admits(&self, id: &ApplicationId, account: &str) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT a.*, CASE WHEN EXISTS (SELECT 1 FROM application_members m \
             JOIN users u ON u.id = m.user_id WHERE m.application_id = a.id AND u.email = $2) \
             THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END AS member \
             FROM applications a WHERE a.id = $1",
        )
        .bind(id.as_str())
        .bind(account)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        admitted(row.as_ref())
    }
}
