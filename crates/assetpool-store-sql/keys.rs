//! Applications and their API keys: creation, lookup, lists in creation
//! order, revocation, rotation, disabling and changes, and the recording of
//! key use. The rules (may this key rotate? do its application's sessions
//! end? may its expiry change?) are core's; this only reads and writes.
//! Rotation, disabling and changes lock the key's row, so they happen once
//! across servers.

use super::changes::push_change;
use super::rows::{self, key_profile_columns, map_error, millis, optional_millis};
use super::sessions::revoke_sessions_where;
use crate::dialect::{Backend, Connection, Db};
use assetpool_core::ids::{ApplicationId, KeyId};
use assetpool_core::store::{
    sessions_end_with, ApiKeyRecord, ApiKeyUpdate, ApplicationRecord, Change, CreationPage,
    KeyFilter, KeyStatusFilter, KeyStore, StoreError, StoreResult,
};
use assetpool_core::{Environment, SecretHash};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Keys whose last use is written per statement (2 parameters each).
const USES_PER_STATEMENT: usize = 500;

/// Raises each key's `last_used_at` to the time given (never lowers it), many
/// keys per statement: a flush may carry every key a server saw, and one
/// statement per key made its cost grow with the keys in use. `uses` is in
/// key order, one row per key; the rows are locked in that order, so
/// concurrent writers do not deadlock. Unknown (deleted) keys are skipped.
pub(super) async fn raise_last_used(
    connection: &mut Connection,
    uses: &[(&str, i64)],
) -> StoreResult<()> {
    for chunk in uses.chunks(USES_PER_STATEMENT) {
        let mut builder = sqlx::QueryBuilder::<Db>::new("WITH v (id, used_at) AS (");
        builder.push_values(chunk, |mut row, (key_id, used_at)| {
            row.push_bind(*key_id).push_bind(*used_at);
        });
        // The rows are locked in key order by the sub-select (an UPDATE
        // itself locks in whatever order its join yields them).
        builder.push(concat!(
            ") UPDATE api_keys SET last_used_at = ",
            greatest!(),
            "(COALESCE(api_keys.last_used_at, 0), l.used_at) \
             FROM (SELECT k.id, v.used_at FROM api_keys k JOIN v ON k.id = v.id \
             ORDER BY k.id",
            collate_c!(),
            for_no_key_update!("k"),
            ") AS l WHERE api_keys.id = l.id"
        ));
        builder
            .build()
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

/// Inserts `key` and announces it, in the transaction of `connection`.
async fn insert_key(connection: &mut Connection, key: &ApiKeyRecord) -> StoreResult<()> {
    let limits = key.limits.to_columns();
    let (metadata, allowed_cidrs) = key_profile_columns(key);
    sqlx::query(
        "INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, \
         created_at, expires_at, revoked_at, revoked_reason, successor_id, last_used_at, \
         rate_requests, rate_unit_seconds, rate_burst, quota_requests, quota_period, \
         disabled_at, metadata, owner, allowed_cidrs, scopes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22)",
    )
    .bind(key.id.as_str())
    .bind(key.application_id.as_str())
    .bind(&key.name)
    .bind(key.environment.as_str())
    .bind(key.key_hash.0.as_slice())
    .bind(&key.prefix)
    .bind(millis(key.created_at))
    .bind(optional_millis(key.expires_at))
    .bind(optional_millis(key.revoked_at))
    .bind(&key.revoked_reason)
    .bind(key.successor_id.as_ref().map(KeyId::as_str))
    .bind(optional_millis(key.last_used_at))
    .bind(limits.rate_requests)
    .bind(limits.rate_unit_seconds)
    .bind(limits.rate_burst)
    .bind(limits.quota_requests)
    .bind(limits.quota_period)
    .bind(optional_millis(key.disabled_at))
    .bind(metadata)
    .bind(&key.owner)
    .bind(allowed_cidrs)
    .bind(rows::scope_text(key.scopes.as_ref()))
    .execute(&mut *connection)
    .await
    .map_err(map_error)?;
    let change = Change::ApiKey {
        key_hash: key.key_hash,
    };
    push_change(connection, &change, millis(key.created_at)).await
}

/// The key `id`, its row locked for the rest of the transaction.
async fn locked_key(connection: &mut Connection, id: &KeyId) -> StoreResult<ApiKeyRecord> {
    let row = sqlx::query(concat!(
        "SELECT * FROM api_keys WHERE id = $1",
        for_update!()
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *connection)
    .await
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)?;
    rows::api_key(&row)
}

#[async_trait]
impl KeyStore for Backend {
    async fn create_application(&self, application: &ApplicationRecord) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        sqlx::query(
            "INSERT INTO applications (id, name, created_at, members_only) VALUES ($1, $2, $3, $4)",
        )
        .bind(application.id.as_str())
        .bind(&application.name)
        .bind(millis(application.created_at))
        .bind(application.members_only)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)
    }

    async fn application(&self, id: &ApplicationId) -> StoreResult<Option<ApplicationRecord>> {
        let row = sqlx::query("SELECT * FROM applications WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut transaction = self.write().await?;
        insert_key(&mut transaction, key).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn api_key_by_hash(&self, hash: &SecretHash) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn list_api_keys(
        &self,
        environment: Option<Environment>,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        let filter = KeyFilter {
            environment,
            ..KeyFilter::default()
        };
        // Without a state filter, the time is not read.
        list_keys(self, &filter, Utc::now(), page).await
    }

    async fn list_application_api_keys(
        &self,
        application_id: &ApplicationId,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        let filter = KeyFilter {
            application_id: Some(application_id.clone()),
            ..KeyFilter::default()
        };
        // Without a state filter, the time is not read.
        list_keys(self, &filter, Utc::now(), page).await
    }

    async fn filter_api_keys(
        &self,
        filter: &KeyFilter,
        now: DateTime<Utc>,
        page: &CreationPage,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        list_keys(self, filter, now, page).await
    }

    async fn api_keys_expiring(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        let found = sqlx::query(
            "SELECT * FROM api_keys WHERE revoked_at IS NULL AND successor_id IS NULL \
             AND expires_at > $1 AND expires_at <= $2 ORDER BY expires_at, id",
        )
        .bind(millis(after))
        .bind(millis(until))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(rows::api_key).collect()
    }

    async fn revoke_api_key(
        &self,
        id: &KeyId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        let mut transaction = self.write().await?;
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1), \
             revoked_reason = COALESCE(revoked_reason, $2) WHERE id = $3 RETURNING *",
        )
        .bind(millis(now))
        .bind(reason)
        .bind(id.as_str())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
        let key = rows::api_key(&row)?;
        // A revoked key may have leaked: the sessions opened through it end.
        revoke_sessions_where(&mut transaction, "api_key_id", key.id.as_str(), now).await?;
        let remaining = sqlx::query("SELECT * FROM api_keys WHERE application_id = $1")
            .bind(key.application_id.as_str())
            .fetch_all(&mut *transaction)
            .await
            .map_err(map_error)?
            .iter()
            .map(rows::api_key)
            .collect::<StoreResult<Vec<_>>>()?;
        if sessions_end_with(&remaining, now) {
            revoke_sessions_where(
                &mut transaction,
                "application_id",
                key.application_id.as_str(),
                now,
            )
            .await?;
        }
        let change = Change::ApiKey {
            key_hash: key.key_hash,
        };
        push_change(&mut transaction, &change, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(key)
    }

    async fn rotate_api_key(
        &self,
        id: &KeyId,
        successor: &ApiKeyRecord,
        grace_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        let mut transaction = self.write().await?;
        let old = locked_key(&mut transaction, id).await?;
        if !old.can_rotate(now) {
            return Err(StoreError::Conflict(
                "the key was already rotated, revoked or has expired".into(),
            ));
        }
        insert_key(&mut transaction, successor).await?;
        sqlx::query(concat!(
            "UPDATE api_keys SET successor_id = $1, expires_at = ",
            least!(),
            "(COALESCE(expires_at, $2), $2) WHERE id = $3"
        ))
        .bind(successor.id.as_str())
        .bind(millis(grace_until))
        .bind(id.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        let change = Change::ApiKey {
            key_hash: old.key_hash,
        };
        push_change(&mut transaction, &change, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(successor.clone())
    }

    async fn record_api_key_use(&self, uses: &[(KeyId, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<(&str, i64)> = uses
            .iter()
            .map(|(key_id, used_at)| (key_id.as_str(), millis(*used_at)))
            .collect();
        // Key order, the latest time first, then one row per key.
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        rows.dedup_by_key(|row| row.0);
        let mut transaction = self.write().await?;
        raise_last_used(&mut transaction, &rows).await?;
        transaction.commit().await.map_err(map_error)
    }

    async fn update_api_key(
        &self,
        id: &KeyId,
        update: &ApiKeyUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        let mut transaction = self.write().await?;
        let old = locked_key(&mut transaction, id).await?;
        if !update.allowed_on(&old) {
            return Err(StoreError::Conflict(
                "the expiry of a rotated or revoked key cannot change".into(),
            ));
        }
        let new = update.apply(&old);
        let limits = new.limits.to_columns();
        let (metadata, allowed_cidrs) = key_profile_columns(&new);
        let row = sqlx::query(
            "UPDATE api_keys SET name = $1, rate_requests = $2, rate_unit_seconds = $3, \
             rate_burst = $4, quota_requests = $5, quota_period = $6, expires_at = $7, \
             metadata = $8, owner = $9, allowed_cidrs = $10, scopes = $12 WHERE id = $11 \
             RETURNING *",
        )
        .bind(&new.name)
        .bind(limits.rate_requests)
        .bind(limits.rate_unit_seconds)
        .bind(limits.rate_burst)
        .bind(limits.quota_requests)
        .bind(limits.quota_period)
        .bind(optional_millis(new.expires_at))
        .bind(metadata)
        .bind(&new.owner)
        .bind(allowed_cidrs)
        .bind(id.as_str())
        .bind(rows::scope_text(new.scopes.as_ref()))
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        let key = rows::api_key(&row)?;
        let change = Change::ApiKey {
            key_hash: key.key_hash,
        };
        push_change(&mut transaction, &change, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(key)
    }

    async fn set_api_key_disabled(
        &self,
        id: &KeyId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiKeyRecord> {
        let mut transaction = self.write().await?;
        let old = locked_key(&mut transaction, id).await?;
        if !old.can_toggle_disabled() {
            return Err(StoreError::Conflict(
                "a revoked key cannot be disabled or enabled".into(),
            ));
        }
        let disabled_at = if disabled {
            Some(old.disabled_at.unwrap_or(now))
        } else {
            None
        };
        let row = sqlx::query("UPDATE api_keys SET disabled_at = $1 WHERE id = $2 RETURNING *")
            .bind(optional_millis(disabled_at))
            .bind(id.as_str())
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        let key = rows::api_key(&row)?;
        let key_change = Change::ApiKey {
            key_hash: key.key_hash,
        };
        push_change(&mut transaction, &key_change, millis(now)).await?;
        let set_change = Change::KeyDisabled {
            key_id: key.id.clone(),
            disabled,
        };
        push_change(&mut transaction, &set_change, millis(now)).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(key)
    }

    async fn disabled_api_keys(&self) -> StoreResult<Vec<KeyId>> {
        let found = sqlx::query(
            "SELECT id FROM api_keys WHERE disabled_at IS NOT NULL AND revoked_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(|row| rows::id(row, "id")).collect()
    }
}

/// A value bound to a composed key-list query.
enum Bound<'a> {
    Text(&'a str),
    Integer(i64),
}

/// The `WHERE` clause and its values of a list of keys: only the filters
/// given appear (never `$n IS NULL OR ...`), so each combination is a
/// statement of its own that PostgreSQL plans for its index even when it
/// reuses a generic plan. The indexes (migration 0012): creation order
/// (`api_keys_by_creation`), per environment and per application, one
/// partial index per state, and prefix and name (bytewise, for the search's
/// ranges).
struct KeyQuery<'a> {
    conditions: Vec<String>,
    values: Vec<Bound<'a>>,
}

impl<'a> KeyQuery<'a> {
    fn new() -> Self {
        KeyQuery {
            conditions: Vec::new(),
            values: Vec::new(),
        }
    }

    /// `$n` for `value`.
    fn bind(&mut self, value: Bound<'a>) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    fn filter(&mut self, filter: &'a KeyFilter, now: DateTime<Utc>) {
        // With a search, its indexes answer and the other conditions only
        // filter what it found (SQLite must be told; see `unindexed!`).
        let p = if filter.search.is_some() {
            unindexed!()
        } else {
            ""
        };
        if let Some(environment) = filter.environment {
            let value = self.bind(Bound::Text(environment.as_str()));
            self.conditions.push(format!("{p}environment = {value}"));
        }
        if let Some(application_id) = &filter.application_id {
            let value = self.bind(Bound::Text(application_id.as_str()));
            self.conditions.push(format!("{p}application_id = {value}"));
        }
        if let Some(status) = filter.status {
            let now = self.bind(Bound::Integer(millis(now)));
            // `ApiKeyRecord::status`: revoked, then expired, then disabled,
            // then rotating, then active. Each predicate holds its partial
            // index's condition word for word (SQLite uses a partial index
            // only then).
            self.conditions.push(match status {
                KeyStatusFilter::Revoked => format!("{p}revoked_at IS NOT NULL"),
                KeyStatusFilter::Expired => format!(
                    "{p}revoked_at IS NULL AND {p}expires_at IS NOT NULL \
                     AND {p}expires_at <= {now}"
                ),
                KeyStatusFilter::Disabled => format!(
                    "{p}revoked_at IS NULL AND {p}disabled_at IS NOT NULL \
                     AND ({p}expires_at IS NULL OR {p}expires_at > {now})"
                ),
                KeyStatusFilter::Active => format!(
                    "{p}revoked_at IS NULL AND {p}disabled_at IS NULL \
                     AND {p}successor_id IS NULL AND ({p}expires_at IS NULL OR {p}expires_at > {now})"
                ),
            });
        }
        if let Some(search) = &filter.search {
            let text = self.bind(Bound::Text(search.text()));
            // Starts with the text: at or above it, and below the least
            // string above all that start with it (bytewise, as the
            // indexes order).
            let above = search.above().map(|above| self.bind(Bound::Text(above)));
            let range = |column: &str| match &above {
                Some(above) => format!(
                    "({column}{c} >= {text} AND {column}{c} < {above})",
                    c = collate_c!()
                ),
                None => format!("{column}{c} >= {text}", c = collate_c!()),
            };
            self.conditions.push(format!(
                "(id = {text} OR {} OR {})",
                range("prefix"),
                range("name")
            ));
        }
    }

    /// After the page's cursor: `created_at >= t` bounds the index range
    /// (an `OR` alone would not), the rest settles ties. With a search, the
    /// search's indexes answer (see [`KeyQuery::filter`]).
    fn after(&mut self, page: &'a CreationPage, searched: bool) {
        let p = if searched { unindexed!() } else { "" };
        if let Some((time, id)) = &page.after {
            let time = self.bind(Bound::Integer(millis(*time)));
            let id = self.bind(Bound::Text(id.as_str()));
            self.conditions.push(format!(
                "{p}created_at >= {time} AND ({p}created_at > {time} OR {p}id{c} > {id})",
                c = collate_c!()
            ));
        }
    }

    fn sql(&mut self, limit: u32) -> String {
        let limit = self.bind(Bound::Integer(i64::from(limit)));
        let conditions = if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        };
        format!(
            "SELECT * FROM api_keys{conditions} ORDER BY created_at, id{c} LIMIT {limit}",
            c = collate_c!()
        )
    }
}

/// One page of the keys `filter` admits at `now`, in creation order.
async fn list_keys(
    store: &Backend,
    filter: &KeyFilter,
    now: DateTime<Utc>,
    page: &CreationPage,
) -> StoreResult<Vec<ApiKeyRecord>> {
    let mut query = KeyQuery::new();
    query.filter(filter, now);
    query.after(page, filter.search.is_some());
    let sql = query.sql(page.limit);
    // Not kept as a prepared statement: PostgreSQL then plans it with its
    // values (a search for a rare name through the name index, a common one
    // along the creation order), never with a generic plan.
    let mut statement = sqlx::query::<Db>(&sql).persistent(false);
    for value in &query.values {
        statement = match value {
            Bound::Text(text) => statement.bind(*text),
            Bound::Integer(number) => statement.bind(*number),
        };
    }
    let found = statement.fetch_all(&store.pool).await.map_err(map_error)?;
    found.iter().map(rows::api_key).collect()
}
