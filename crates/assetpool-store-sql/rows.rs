//! Conversions between rows and the core's records, and from sqlx errors to
//! the core's small error type.

use crate::dialect::Row;
use assetpool_core::allowed_networks::AllowedNetworks;
use assetpool_core::clock::from_millis;
use assetpool_core::key_metadata::KeyMetadata;
use assetpool_core::limits::KeyLimits;
use assetpool_core::store::{
    AlertRecord, ApiKeyRecord, ApplicationRecord, AuditRecord, DeliveryStatus, NewAuditEntry,
    SigningKeyRecord, StoreError, UserRecord, WebhookDelivery,
};
use assetpool_core::{Environment, ScopeSet, SecretHash};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn optional_millis(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(millis)
}

pub(crate) fn time(row: &Row, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    Ok(from_millis(row.try_get::<i64, _>(column)?))
}

pub(crate) fn optional_time(row: &Row, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_millis))
}

/// Reads an id column (text) as its id type.
pub(crate) fn id<T: From<String>>(row: &Row, column: &str) -> Result<T, StoreError> {
    Ok(row.try_get::<String, _>(column).map_err(map_error)?.into())
}

/// Reads a nullable id column (text) as its id type.
pub(crate) fn optional_id<T: From<String>>(
    row: &Row,
    column: &str,
) -> Result<Option<T>, StoreError> {
    Ok(row
        .try_get::<Option<String>, _>(column)
        .map_err(map_error)?
        .map(T::from))
}

/// Reads a nullable scopes column (the set's text form; NULL: unrestricted).
pub(crate) fn scopes(row: &Row, column: &str) -> Result<Option<ScopeSet>, StoreError> {
    row.try_get::<Option<String>, _>(column)
        .map_err(map_error)?
        .map(|text| {
            ScopeSet::parse(&text)
                .map_err(|error| StoreError::Other(format!("stored {column}: {error}")))
        })
        .transpose()
}

/// The column value of a set of scopes (its text form; NULL: unrestricted).
pub(crate) fn scope_text(scopes: Option<&ScopeSet>) -> Option<String> {
    scopes.map(ScopeSet::to_string)
}

pub(crate) fn hash_from_blob(blob: &[u8]) -> Result<SecretHash, StoreError> {
    let bytes: [u8; 32] = blob
        .try_into()
        .map_err(|_| StoreError::Other("stored hash is not 32 bytes".into()))?;
    Ok(SecretHash(bytes))
}

pub(crate) fn application(row: &Row) -> Result<ApplicationRecord, StoreError> {
    Ok(ApplicationRecord {
        id: id(row, "id")?,
        name: row.try_get("name").map_err(map_error)?,
        created_at: time(row, "created_at").map_err(map_error)?,
        members_only: row.try_get("members_only").map_err(map_error)?,
    })
}

pub(crate) fn api_key(row: &Row) -> Result<ApiKeyRecord, StoreError> {
    let environment: String = row.try_get("environment").map_err(map_error)?;
    let hash: Vec<u8> = row.try_get("key_hash").map_err(map_error)?;
    Ok(ApiKeyRecord {
        id: id(row, "id")?,
        application_id: id(row, "application_id")?,
        name: row.try_get("name").map_err(map_error)?,
        environment: Environment::parse(&environment)
            .map_err(|error| StoreError::Other(error.to_string()))?,
        key_hash: hash_from_blob(&hash)?,
        prefix: row.try_get("prefix").map_err(map_error)?,
        created_at: time(row, "created_at").map_err(map_error)?,
        expires_at: optional_time(row, "expires_at").map_err(map_error)?,
        revoked_at: optional_time(row, "revoked_at").map_err(map_error)?,
        revoked_reason: row.try_get("revoked_reason").map_err(map_error)?,
        successor_id: optional_id(row, "successor_id")?,
        last_used_at: optional_time(row, "last_used_at").map_err(map_error)?,
        limits: KeyLimits::from_columns(
            row.try_get("rate_requests").map_err(map_error)?,
            row.try_get("rate_unit_seconds").map_err(map_error)?,
            row.try_get("rate_burst").map_err(map_error)?,
            row.try_get("quota_requests").map_err(map_error)?,
            row.try_get::<Option<String>, _>("quota_period")
                .map_err(map_error)?
                .as_deref(),
        ),
        disabled_at: optional_time(row, "disabled_at").map_err(map_error)?,
        metadata: row
            .try_get::<Option<String>, _>("metadata")
            .map_err(map_error)?
            .map(|text| KeyMetadata::from_storage(&text))
            .transpose()
            .map_err(|error| StoreError::Other(format!("stored key metadata: {error}")))?,
        owner: row.try_get("owner").map_err(map_error)?,
        allowed_networks: match row
            .try_get::<Option<String>, _>("allowed_cidrs")
            .map_err(map_error)?
        {
            Some(text) => AllowedNetworks::from_storage(&text)
                .map_err(|error| StoreError::Other(format!("stored allow-list: {error}")))?,
            None => None,
        },
        scopes: scopes(row, "scopes")?,
    })
}

/// The storage columns of a key's metadata and allow-list.
pub(crate) fn key_profile_columns(key: &ApiKeyRecord) -> (Option<String>, Option<String>) {
    (
        key.metadata.as_ref().map(KeyMetadata::to_storage),
        key.allowed_networks
            .as_ref()
            .map(AllowedNetworks::to_storage),
    )
}

pub(crate) fn user(row: &Row) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: id(row, "id")?,
        email: row.try_get("email").map_err(map_error)?,
        password_hash: row.try_get("password_hash").map_err(map_error)?,
        admin: row.try_get("admin").map_err(map_error)?,
        disabled: row.try_get("disabled").map_err(map_error)?,
        created_at: time(row, "created_at").map_err(map_error)?,
        password_version: row.try_get("password_version").map_err(map_error)?,
        scopes: scopes(row, "scopes")?,
    })
}

pub(crate) fn signing_key(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: id(row, "kid")?,
        algorithm: row.try_get("algorithm").map_err(map_error)?,
        sealed_private_key: row.try_get("sealed_private_key").map_err(map_error)?,
        public_key: row.try_get("public_key").map_err(map_error)?,
        created_at: time(row, "created_at").map_err(map_error)?,
        retired_at: optional_time(row, "retired_at").map_err(map_error)?,
        retires_at: optional_time(row, "retires_at").map_err(map_error)?,
    })
}

/// Reads a non-negative counter column (negative values read as 0).
pub(crate) fn count(row: &Row, column: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.try_get::<i64, _>(column).map_err(map_error)?).unwrap_or(0))
}

pub(crate) fn alert(row: &Row) -> Result<AlertRecord, StoreError> {
    Ok(AlertRecord {
        seq: row.try_get("seq").map_err(map_error)?,
        id: id(row, "id")?,
        rule: row.try_get("rule").map_err(map_error)?,
        subject: row.try_get("subject").map_err(map_error)?,
        api_key_id: optional_id(row, "api_key_id")?,
        account: row.try_get("account").map_err(map_error)?,
        evidence: row.try_get("evidence").map_err(map_error)?,
        first_seen: time(row, "first_seen").map_err(map_error)?,
        last_seen: time(row, "last_seen").map_err(map_error)?,
        occurrences: count(row, "occurrences")?,
        acked_at: optional_time(row, "acked_at").map_err(map_error)?,
        acked_by: row.try_get("acked_by").map_err(map_error)?,
    })
}

pub(crate) fn webhook_delivery(row: &Row) -> Result<WebhookDelivery, StoreError> {
    Ok(WebhookDelivery {
        id: row.try_get("id").map_err(map_error)?,
        alert_id: id(row, "alert_id")?,
        url: row.try_get("url").map_err(map_error)?,
        secret_ref: row.try_get("secret_ref").map_err(map_error)?,
        payload: row.try_get("payload").map_err(map_error)?,
        attempts: u32::try_from(count(row, "attempts")?).unwrap_or(u32::MAX),
        created_at: time(row, "created_at").map_err(map_error)?,
    })
}

pub(crate) fn delivery_status(row: &Row) -> Result<DeliveryStatus, StoreError> {
    Ok(DeliveryStatus {
        id: row.try_get("id").map_err(map_error)?,
        alert_id: id(row, "alert_id")?,
        attempts: u32::try_from(count(row, "attempts")?).unwrap_or(u32::MAX),
        created_at: time(row, "created_at").map_err(map_error)?,
        next_attempt_at: time(row, "next_attempt_at").map_err(map_error)?,
        delivered_at: optional_time(row, "delivered_at").map_err(map_error)?,
        given_up_at: optional_time(row, "given_up_at").map_err(map_error)?,
        last_error: row.try_get("last_error").map_err(map_error)?,
    })
}

pub(crate) fn audit(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq").map_err(map_error)?,
        entry: NewAuditEntry {
            at: time(row, "at").map_err(map_error)?,
            actor: row.try_get("actor").map_err(map_error)?,
            actor_id: row.try_get("actor_id").map_err(map_error)?,
            action: row.try_get("action").map_err(map_error)?,
            target: row.try_get("target").map_err(map_error)?,
            outcome: row.try_get("outcome").map_err(map_error)?,
            error: row.try_get("error").map_err(map_error)?,
            detail: row.try_get("detail").map_err(map_error)?,
        },
    })
}

/// Maps a sqlx error to the core's small error type: a lost connection or a
/// database that cannot answer now is `Unavailable`, never "not found".
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            StoreError::Conflict(database.message().to_owned())
        }
        // `Protocol`: the server closed or garbled the connection mid-exchange
        // (a restart closing a new connection before its TLS request is
        // answered): as unavailable as a reset.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(database) if crate::dialect::cannot_answer_now(database.as_ref()) => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Other(error.to_string()),
    }
}

#[cfg(test)]
mod map_error_tests {
    use super::*;

    #[test]
    fn a_connection_closed_mid_exchange_is_unavailable() {
        let closed = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(matches!(map_error(closed), StoreError::Unavailable(_)));
        assert!(matches!(
            map_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_error(sqlx::Error::RowNotFound),
            StoreError::NotFound
        ));
    }
}
