//! Export and import of all durable state (see [`assetpool_core::export`]).
//!
//! Export reads in one read transaction, so it sees one snapshot. Import
//! runs in one transaction that first keeps other writers out (SQLite's
//! write lock; PostgreSQL's `EXCLUSIVE` table locks, reads go on), checks
//! that the database is empty, then inserts everything or nothing, batch by
//! batch as the source gives them, with one multi-row `INSERT` per run of
//! records of one kind. API keys are inserted without their successor first
//! and linked afterwards, since a successor may sort before its predecessor.
//! Alerts and audit entries keep their `seq` (the audit chain's head names
//! positions); the sequences are moved past them at the end. Text sorts
//! bytewise, so both backends export in the same order.

use super::rows::{self, map_error, millis, optional_millis};
use crate::dialect::{self, Backend, Connection, Db, Row};
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::clock::from_millis;
use assetpool_core::export::{
    ExportRecord, ExportedAlert, ExportedApiKey, ExportedApplication, ExportedApplicationMember,
    ExportedAuditChain, ExportedAuditEntry, ExportedRefreshToken, ExportedSession, ExportedSetting,
    ExportedSigningKey, ExportedUser,
};
use assetpool_core::key_metadata::KeyMetadata;
use assetpool_core::limits::KeyLimits;
use assetpool_core::store::{
    AuditChainHead, AuditLink, ExportSink, ImportSource, StoreError, StoreResult, TransferStore,
    DATABASE_NOT_EMPTY,
};
use assetpool_core::ApplicationRole;
use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use sqlx::query_builder::Separated;
use sqlx::QueryBuilder;
use sqlx::Row as _;

#[async_trait]
impl TransferStore for Backend {
    async fn export_to(&self, sink: &mut dyn ExportSink) -> StoreResult<()> {
        let mut transaction = self.read().await?;
        let connection: &mut Connection = &mut transaction;
        // The change feed is not moved, nor the mark of how far it was pruned.
        let settings = concat!(
            "SELECT name, value FROM settings WHERE name <> 'changes_pruned_through' \
             ORDER BY name",
            collate_c!()
        );
        each_row(connection, settings, sink, |row| {
            Ok(ExportRecord::Setting(ExportedSetting {
                name: row.try_get("name").map_err(map_error)?,
                value: row.try_get("value").map_err(map_error)?,
            }))
        })
        .await?;
        let applications = concat!(
            "SELECT * FROM applications ORDER BY created_at, id",
            collate_c!()
        );
        each_row(connection, applications, sink, |row| {
            Ok(ExportRecord::Application(ExportedApplication::from(
                &rows::application(row)?,
            )))
        })
        .await?;
        let api_keys = concat!(
            "SELECT * FROM api_keys ORDER BY created_at, id",
            collate_c!()
        );
        each_row(connection, api_keys, sink, |row| {
            Ok(ExportRecord::ApiKey(Box::new(ExportedApiKey::from(
                &rows::api_key(row)?,
            ))))
        })
        .await?;
        let users = concat!("SELECT * FROM users ORDER BY created_at, id", collate_c!());
        each_row(connection, users, sink, |row| {
            Ok(ExportRecord::User(ExportedUser::from(&rows::user(row)?)))
        })
        .await?;
        let members = concat!(
            "SELECT * FROM application_members ORDER BY application_id",
            collate_c!(),
            ", user_id",
            collate_c!()
        );
        each_row(connection, members, sink, |row| {
            Ok(ExportRecord::ApplicationMember(member(row)?))
        })
        .await?;
        let signing_keys = concat!(
            "SELECT * FROM signing_keys ORDER BY created_at, kid",
            collate_c!()
        );
        each_row(connection, signing_keys, sink, |row| {
            Ok(ExportRecord::SigningKey(ExportedSigningKey::from(
                &rows::signing_key(row)?,
            )))
        })
        .await?;
        let sessions = concat!(
            "SELECT * FROM sessions ORDER BY created_at, id",
            collate_c!()
        );
        each_row(connection, sessions, sink, |row| {
            Ok(ExportRecord::Session(session(row)?))
        })
        .await?;
        let tokens = "SELECT * FROM refresh_tokens ORDER BY expires_at, token_hash";
        each_row(connection, tokens, sink, |row| {
            Ok(ExportRecord::RefreshToken(refresh_token(row)?))
        })
        .await?;
        export_alerts_and_audit(connection, sink).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn import_from(&self, source: &mut dyn ImportSource) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        let connection: &mut Connection = &mut transaction;
        dialect::lock_tables_for_import(connection).await?;
        refuse_unless_empty(connection).await?;
        let mut rank = 0;
        // (key, successor): linked once every key is in.
        let mut successors: Vec<(String, String)> = Vec::new();
        while let Some(batch) = source.next_batch()? {
            for record in &batch {
                if record.rank() < rank {
                    return Err(StoreError::Other(format!(
                        "the import's records are out of order: a {} record after later kinds",
                        record.kind()
                    )));
                }
                rank = record.rank();
                if let ExportRecord::ApiKey(key) = record {
                    if let Some(successor_id) = &key.successor_id {
                        successors.push((key.id.to_string(), successor_id.to_string()));
                    }
                }
            }
            insert_all(connection, &batch).await?;
        }
        for (id, successor_id) in &successors {
            sqlx::query("UPDATE api_keys SET successor_id = $1 WHERE id = $2")
                .bind(successor_id)
                .bind(id)
                .execute(&mut *connection)
                .await
                .map_err(map_error)?;
        }
        dialect::advance_sequences_after_import(connection).await?;
        transaction.commit().await.map_err(map_error)
    }
}

/// Alerts, the audit log and its chain's head, each in `seq` order.
async fn export_alerts_and_audit(
    connection: &mut Connection,
    sink: &mut dyn ExportSink,
) -> StoreResult<()> {
    each_row(
        connection,
        "SELECT * FROM alerts ORDER BY seq",
        sink,
        |row| {
            Ok(ExportRecord::Alert(Box::new(ExportedAlert::from(
                &rows::alert(row)?,
            ))))
        },
    )
    .await?;
    each_row(
        connection,
        "SELECT * FROM audit_log ORDER BY seq",
        sink,
        |row| {
            Ok(ExportRecord::AuditEntry(Box::new(
                ExportedAuditEntry::from(&AuditLink {
                    record: rows::audit(row)?,
                    previous_hash: row.try_get("previous_hash").map_err(map_error)?,
                    hash: row.try_get("hash").map_err(map_error)?,
                }),
            )))
        },
    )
    .await?;
    each_row(
        connection,
        "SELECT * FROM audit_chain WHERE id = 1",
        sink,
        |row| {
            Ok(ExportRecord::AuditChain(ExportedAuditChain::from(
                &AuditChainHead {
                    started_after: row.try_get("started_after").map_err(map_error)?,
                    last_seq: row.try_get("last_seq").map_err(map_error)?,
                    last_hash: row.try_get("last_hash").map_err(map_error)?,
                },
            )))
        },
    )
    .await?;
    Ok(())
}

/// Runs `statement` and gives each row, as `convert` makes it a record, to
/// `sink` as it arrives (rows are not collected).
async fn each_row(
    connection: &mut Connection,
    statement: &str,
    sink: &mut dyn ExportSink,
    convert: impl Fn(&Row) -> StoreResult<ExportRecord>,
) -> StoreResult<()> {
    let mut rows = sqlx::query(statement).fetch(connection);
    while let Some(row) = rows.try_next().await.map_err(map_error)? {
        sink.record(convert(&row)?)?;
    }
    Ok(())
}

fn session(row: &Row) -> StoreResult<ExportedSession> {
    Ok(ExportedSession {
        id: rows::id(row, "id")?,
        user_id: rows::id(row, "user_id")?,
        application_id: rows::id(row, "application_id")?,
        api_key_id: rows::id(row, "api_key_id")?,
        created_at: from_millis(row.try_get("created_at").map_err(map_error)?),
        access_expires_at: from_millis(row.try_get("access_expires_at").map_err(map_error)?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(map_error)?
            .map(from_millis),
        scopes: rows::scopes(row, "scopes")?,
    })
}

fn member(row: &Row) -> StoreResult<ExportedApplicationMember> {
    let role: String = row.try_get("role").map_err(map_error)?;
    Ok(ExportedApplicationMember {
        application_id: rows::id(row, "application_id")?,
        user_id: rows::id(row, "user_id")?,
        role: ApplicationRole::parse(&role)
            .map_err(|error| StoreError::Other(error.to_string()))?,
        created_at: from_millis(row.try_get("created_at").map_err(map_error)?),
    })
}

fn refresh_token(row: &Row) -> StoreResult<ExportedRefreshToken> {
    let hash: Vec<u8> = row.try_get("token_hash").map_err(map_error)?;
    Ok(ExportedRefreshToken {
        token_hash: rows::hash_from_blob(&hash)?,
        session_id: rows::id(row, "session_id")?,
        expires_at: from_millis(row.try_get("expires_at").map_err(map_error)?),
        spent_at: row
            .try_get::<Option<i64>, _>("spent_at")
            .map_err(map_error)?
            .map(from_millis),
    })
}

async fn refuse_unless_empty(connection: &mut Connection) -> StoreResult<()> {
    let occupied: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM applications) OR EXISTS (SELECT 1 FROM api_keys) \
         OR EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM sessions) \
         OR EXISTS (SELECT 1 FROM signing_keys) OR EXISTS (SELECT 1 FROM alerts) \
         OR EXISTS (SELECT 1 FROM audit_log) THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END",
    )
    .fetch_one(connection)
    .await
    .map_err(map_error)?;
    if occupied != 0 {
        return Err(StoreError::Conflict(DATABASE_NOT_EMPTY.to_owned()));
    }
    Ok(())
}

/// Rows per multi-row `INSERT` (SQLite binds at most 32766 values,
/// PostgreSQL 65535; a key row binds 22).
const BATCH_ROWS: usize = 500;

/// Inserts records (in import order) with one multi-row `INSERT` per run of
/// up to [`BATCH_ROWS`] records of one kind: a million keys take seconds.
async fn insert_all(connection: &mut Connection, ordered: &[ExportRecord]) -> StoreResult<()> {
    let mut start = 0;
    while start < ordered.len() {
        let kind = ordered[start].kind();
        let run = ordered[start..]
            .iter()
            .take(BATCH_ROWS)
            .take_while(|record| record.kind() == kind)
            .count();
        insert_batch(&mut *connection, &ordered[start..start + run]).await?;
        start += run;
    }
    Ok(())
}

/// One `INSERT` of records that are all of one kind.
async fn insert_batch(connection: &mut Connection, batch: &[ExportRecord]) -> StoreResult<()> {
    let Some(first) = batch.first() else {
        return Ok(());
    };
    if let ExportRecord::AuditChain(head) = first {
        // The row exists from the migrations on; the import sets its ends.
        sqlx::query(
            "UPDATE audit_chain SET started_after = $1, last_seq = $2, last_hash = $3 WHERE id = 1",
        )
        .bind(head.started_after)
        .bind(head.last_seq)
        .bind(&head.last_hash)
        .execute(connection)
        .await
        .map_err(map_error)?;
        return Ok(());
    }
    let mut builder: QueryBuilder<'_, Db> = QueryBuilder::new(insert_head(first));
    builder.push_values(batch.iter(), bind_row);
    if matches!(first, ExportRecord::Setting(_)) {
        builder.push(" ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    }
    builder
        .build()
        .execute(connection)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// The `INSERT ... ` head of a run of records of the kind of `record`.
fn insert_head(record: &ExportRecord) -> &'static str {
    match record {
        ExportRecord::Setting(_) => "INSERT INTO settings (name, value) ",
        ExportRecord::Application(_) => {
            "INSERT INTO applications (id, name, created_at, members_only) "
        }
        // The successor is linked once every key is in.
        ExportRecord::ApiKey(_) => {
            "INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, \
             created_at, expires_at, revoked_at, revoked_reason, successor_id, last_used_at, \
             rate_requests, rate_unit_seconds, rate_burst, quota_requests, quota_period, \
             disabled_at, metadata, owner, allowed_cidrs, scopes) "
        }
        ExportRecord::User(_) => {
            "INSERT INTO users (id, email, password_hash, admin, disabled, created_at, scopes) "
        }
        // Exactly the keys not retired are active (at most one, by the schema).
        ExportRecord::SigningKey(_) => {
            "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_key, \
             created_at, retired_at, retires_at, active) "
        }
        ExportRecord::Session(_) => {
            "INSERT INTO sessions (id, user_id, application_id, api_key_id, created_at, \
             access_expires_at, revoked_at, scopes) "
        }
        ExportRecord::RefreshToken(_) => {
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, spent_at) "
        }
        ExportRecord::ApplicationMember(_) => {
            "INSERT INTO application_members (application_id, user_id, role, created_at) "
        }
        ExportRecord::Alert(_) => {
            "INSERT INTO alerts (seq, id, rule, subject, api_key_id, account, evidence, \
             first_seen, last_seen, occurrences, acked_at, acked_by) "
        }
        ExportRecord::AuditEntry(_) => {
            "INSERT INTO audit_log (seq, at, actor, actor_id, action, target, outcome, error, \
             detail, previous_hash, hash) "
        }
        // Written by an UPDATE (`insert_batch`), one row at most.
        ExportRecord::AuditChain(_) => "UPDATE audit_chain ",
    }
}

/// Binds the values of one row.
fn bind_row<'args>(mut row: Separated<'_, 'args, Db, &'static str>, record: &'args ExportRecord) {
    match record {
        ExportRecord::Setting(setting) => {
            row.push_bind(&setting.name).push_bind(&setting.value);
        }
        ExportRecord::Application(application) => {
            row.push_bind(application.id.as_str())
                .push_bind(&application.name)
                .push_bind(millis(application.created_at))
                .push_bind(application.members_only);
        }
        ExportRecord::ApiKey(key) => {
            let limits = KeyLimits::from(key.limits.as_ref()).to_columns();
            row.push_bind(key.id.as_str())
                .push_bind(key.application_id.as_str())
                .push_bind(&key.name)
                .push_bind(key.environment.as_str())
                .push_bind(key.key_hash.0.as_slice())
                .push_bind(&key.prefix)
                .push_bind(millis(key.created_at))
                .push_bind(optional_millis(key.expires_at))
                .push_bind(optional_millis(key.revoked_at))
                .push_bind(&key.revoked_reason)
                .push_bind(None::<String>)
                .push_bind(optional_millis(key.last_used_at))
                .push_bind(limits.rate_requests)
                .push_bind(limits.rate_unit_seconds)
                .push_bind(limits.rate_burst)
                .push_bind(limits.quota_requests)
                .push_bind(limits.quota_period)
                .push_bind(optional_millis(key.disabled_at))
                .push_bind(key.metadata.as_ref().map(KeyMetadata::to_storage))
                .push_bind(&key.owner)
                .push_bind(key.allowed_cidrs.as_ref().map(AllowedNetworks::to_storage))
                .push_bind(rows::scope_text(key.scopes.as_ref()));
        }
        ExportRecord::User(user) => {
            row.push_bind(user.id.as_str())
                .push_bind(&user.email)
                .push_bind(&user.password_hash)
                .push_bind(user.admin)
                .push_bind(user.disabled)
                .push_bind(millis(user.created_at))
                .push_bind(rows::scope_text(user.scopes.as_ref()));
        }
        ExportRecord::SigningKey(key) => {
            row.push_bind(key.kid.as_str())
                .push_bind(&key.algorithm)
                .push_bind(&key.sealed_private_key)
                .push_bind(key.public_key.as_slice())
                .push_bind(millis(key.created_at))
                .push_bind(optional_millis(key.retired_at))
                .push_bind(optional_millis(key.retires_at))
                .push_bind(key.retired_at.is_none().then_some(1_i64));
        }
        ExportRecord::Session(session) => {
            row.push_bind(session.id.as_str())
                .push_bind(session.user_id.as_str())
                .push_bind(session.application_id.as_str())
                .push_bind(session.api_key_id.as_str())
                .push_bind(millis(session.created_at))
                .push_bind(millis(session.access_expires_at))
                .push_bind(optional_millis(session.revoked_at))
                .push_bind(rows::scope_text(session.scopes.as_ref()));
        }
        ExportRecord::RefreshToken(token) => {
            row.push_bind(token.token_hash.0.as_slice())
                .push_bind(token.session_id.as_str())
                .push_bind(millis(token.expires_at))
                .push_bind(optional_millis(token.spent_at));
        }
        ExportRecord::ApplicationMember(member) => {
            row.push_bind(member.application_id.as_str())
                .push_bind(member.user_id.as_str())
                .push_bind(member.role.as_str())
                .push_bind(millis(member.created_at));
        }
        ExportRecord::Alert(_) | ExportRecord::AuditEntry(_) | ExportRecord::AuditChain(_) => {
            bind_log_row(row, record);
        }
    }
}

/// Binds the values of an alert or audit entry row.
fn bind_log_row<'args>(
    mut row: Separated<'_, 'args, Db, &'static str>,
    record: &'args ExportRecord,
) {
    match record {
        ExportRecord::Alert(alert) => {
            row.push_bind(alert.seq)
                .push_bind(alert.id.as_str())
                .push_bind(&alert.rule)
                .push_bind(&alert.subject)
                .push_bind(alert.api_key_id.as_ref().map(|id| id.as_str()))
                .push_bind(&alert.account)
                .push_bind(&alert.evidence)
                .push_bind(millis(alert.first_seen))
                .push_bind(millis(alert.last_seen))
                .push_bind(i64::try_from(alert.occurrences).unwrap_or(i64::MAX))
                .push_bind(optional_millis(alert.acked_at))
                .push_bind(&alert.acked_by);
        }
        ExportRecord::AuditEntry(entry) => {
            row.push_bind(entry.seq)
                .push_bind(millis(entry.at))
                .push_bind(&entry.actor)
                .push_bind(&entry.actor_id)
                .push_bind(&entry.action)
                .push_bind(&entry.target)
                .push_bind(&entry.outcome)
                .push_bind(&entry.error)
                .push_bind(&entry.detail)
                .push_bind(&entry.previous_hash)
                .push_bind(&entry.hash);
        }
        // Never bound: `insert_batch` writes the chain's head itself.
        _ => {}
    }
}
