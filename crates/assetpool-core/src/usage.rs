//! Usage per key, counted in memory on the request path and written to
//! storage in batches ([`crate::AuthService::flush_usage`], every few seconds
//! and at graceful shutdown).
//!
//! Each key seen by this server has one [`KeyUsageCell`], shared by every
//! cached copy of the key: counting a request is one atomic add; noting the
//! client address takes the cell's lock only to compare it with the previous
//! one. A flush swaps the counters out and attributes them to the minute the
//! flush interval ended in, so a `kill -9` loses at most one interval.

use crate::ids::KeyId;
use crate::store::{AddressSeen, KeyLastUse, UsageBatch, UsageDelta};
use assetpool_wire::ErrorCode;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Distinct addresses remembered per key between two flushes; more are not recorded.
pub const MAX_ADDRESSES_PER_FLUSH: usize = 1024;
/// Addresses remembered per key as already written today; beyond, an
/// address may be written again (harmless: the writes are idempotent).
const MAX_WRITTEN_ADDRESSES: usize = 4096;
/// A key's last use is written again once it moved by this much (or its
/// address changed), so steady traffic does not rewrite it every flush.
const LAST_USE_PRECISION_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Cells idle for this many flushes are forgotten.
const IDLE_FLUSHES_BEFORE_FORGET: u32 = 720;

// The last variant of `ErrorCode`: a code past it would share a counter
// with the outcomes below (`every_code_is_counted_apart` checks the newest).
const ERROR_CODES: usize = ErrorCode::InsufficientScope as usize + 1;
const SUCCESS: usize = ERROR_CODES;
const SERVER_ERROR: usize = ERROR_CODES + 1;
const LOGIN: usize = ERROR_CODES + 2;
const LOGIN_FAILED: usize = ERROR_CODES + 3;
const OUTCOMES: usize = ERROR_CODES + 4;

/// What happened to one request (or login) of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with 2xx.
    Success,
    /// Refused with a 4xx error code.
    ClientError(ErrorCode),
    /// Answered with 5xx.
    ServerError,
    /// A successful login (counted besides its request).
    Login,
    /// A failed login (counted besides its request).
    LoginFailed,
}

impl Outcome {
    /// The outcome of an answer with `status` and, for errors, `code`.
    pub fn of_status(status: u16, code: Option<ErrorCode>) -> Self {
        match (status, code) {
            (500.., _) => Outcome::ServerError,
            (400..=499, Some(code)) => Outcome::ClientError(code),
            (400..=499, None) => Outcome::ClientError(ErrorCode::InvalidRequest),
            _ => Outcome::Success,
        }
    }

    fn index(self) -> usize {
        match self {
            Outcome::ClientError(code) => code as usize,
            Outcome::Success => SUCCESS,
            Outcome::ServerError => SERVER_ERROR,
            Outcome::Login => LOGIN,
            Outcome::LoginFailed => LOGIN_FAILED,
        }
    }
}

/// The stored outcome name of counter `index` (see [`UsageDelta`]).
fn outcome_name(index: usize) -> String {
    match index {
        SUCCESS => "2xx".to_owned(),
        SERVER_ERROR => "5xx".to_owned(),
        LOGIN => "login".to_owned(),
        LOGIN_FAILED => "login_failed".to_owned(),
        code => ALL_CODES
            .get(code)
            .map_or_else(|| "4xx".to_owned(), |code| format!("4xx:{}", code.as_str())),
    }
}

/// Every error code, in declaration order (index = `code as usize`).
const ALL_CODES: [ErrorCode; ERROR_CODES] = [
    ErrorCode::MissingApiKey,
    ErrorCode::InvalidApiKey,
    ErrorCode::ApiKeyRevoked,
    ErrorCode::ApiKeyExpired,
    ErrorCode::WrongEnvironment,
    ErrorCode::MissingToken,
    ErrorCode::InvalidToken,
    ErrorCode::TokenExpired,
    ErrorCode::TokenRevoked,
    ErrorCode::InvalidRequest,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::InvalidCredentials,
    ErrorCode::TooManyAttempts,
    ErrorCode::Overloaded,
    ErrorCode::InvalidRefreshToken,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::RequestTimeout,
    ErrorCode::StorageUnavailable,
    ErrorCode::RateLimited,
    ErrorCode::UpstreamUnavailable,
    ErrorCode::UpstreamTimeout,
    ErrorCode::InternalError,
    ErrorCode::ApiKeyDisabled,
    ErrorCode::AddressNotAllowed,
    ErrorCode::InvalidScope,
    ErrorCode::InsufficientScope,
];

#[derive(Debug, Default)]
struct Addresses {
    last: Option<IpAddr>,
    /// Address → latest use (ms) since the last flush.
    seen: HashMap<IpAddr, i64>,
}

/// The usage of one key on this server since the last flush.
#[derive(Debug)]
pub struct KeyUsageCell {
    key_id: KeyId,
    counts: [AtomicU64; OUTCOMES],
    /// Latest use (ms since the epoch), 0 if none.
    last_used_ms: AtomicI64,
    /// The last use as last written, and its address.
    written_last_use: Mutex<(i64, Option<IpAddr>)>,
    addresses: Mutex<Addresses>,
    /// The day (ms of its start) and the addresses already written for it:
    /// an address is written once a day (its network's last use too).
    written_addresses: Mutex<(i64, std::collections::HashSet<IpAddr>)>,
    idle_flushes: std::sync::atomic::AtomicU32,
}

impl KeyUsageCell {
    fn new(key_id: &KeyId) -> Self {
        KeyUsageCell {
            key_id: key_id.clone(),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            last_used_ms: AtomicI64::new(0),
            written_last_use: Mutex::new((0, None)),
            addresses: Mutex::new(Addresses::default()),
            written_addresses: Mutex::new((0, std::collections::HashSet::new())),
            idle_flushes: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Counts one outcome.
    pub fn count(&self, outcome: Outcome) {
        self.counts[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Notes a use at `now_ms` from `client` (when known).
    pub fn note_use(&self, now_ms: i64, client: Option<IpAddr>) {
        self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
        let Some(client) = client else {
            return;
        };
        if let Ok(mut addresses) = self.addresses.lock() {
            if addresses.last == Some(client) {
                if let Some(latest) = addresses.seen.get_mut(&client) {
                    *latest = (*latest).max(now_ms);
                    return;
                }
            }
            addresses.last = Some(client);
            if addresses.seen.len() < MAX_ADDRESSES_PER_FLUSH
                || addresses.seen.contains_key(&client)
            {
                let latest = addresses.seen.entry(client).or_insert(now_ms);
                *latest = (*latest).max(now_ms);
            }
        }
    }

    /// Unflushed count of one outcome (for tests and diagnostics).
    pub fn pending(&self, outcome: Outcome) -> u64 {
        self.counts[outcome.index()].load(Ordering::Relaxed)
    }

    /// Takes this cell's counts into `batch`; returns whether anything was taken.
    fn drain_into(&self, minute: DateTime<Utc>, batch: &mut UsageBatch) -> bool {
        let mut any = false;
        for (index, counter) in self.counts.iter().enumerate() {
            let count = counter.swap(0, Ordering::Relaxed);
            if count > 0 {
                any = true;
                batch.counts.push(UsageDelta {
                    key_id: self.key_id.clone(),
                    minute,
                    outcome: outcome_name(index),
                    count,
                });
            }
        }
        let (seen, last) = match self.addresses.lock() {
            Ok(mut addresses) => (std::mem::take(&mut addresses.seen), addresses.last),
            Err(_) => (HashMap::new(), None),
        };
        let written = self
            .written_addresses
            .lock()
            .map(|written| (written.0, written.1.clone()))
            .unwrap_or_default();
        for (address, at_ms) in seen {
            any = true;
            if at_ms - at_ms.rem_euclid(DAY_MS) == written.0 && written.1.contains(&address) {
                continue;
            }
            batch.addresses.push(AddressSeen {
                key_id: self.key_id.clone(),
                address: address.to_string(),
                network: crate::alerts::network_of(address),
                at: crate::clock::from_millis(at_ms),
            });
        }
        let last_used = self.last_used_ms.load(Ordering::Relaxed);
        let (written_at, written_address) = self
            .written_last_use
            .lock()
            .map(|written| *written)
            .unwrap_or_default();
        if last_used > written_at {
            any = true;
            if last_used - written_at >= LAST_USE_PRECISION_MS || last != written_address {
                batch.last_uses.push(KeyLastUse {
                    key_id: self.key_id.clone(),
                    at: crate::clock::from_millis(last_used),
                    address: last.map(|address| address.to_string()),
                });
            }
        }
        any
    }

    /// Remembers an address written for its day.
    fn settle_address(&self, address: IpAddr, at_ms: i64) {
        let day = at_ms - at_ms.rem_euclid(DAY_MS);
        if let Ok(mut written) = self.written_addresses.lock() {
            if written.0 != day {
                *written = (day, std::collections::HashSet::new());
            }
            if written.1.len() < MAX_WRITTEN_ADDRESSES {
                written.1.insert(address);
            }
        }
    }

    /// Remembers a last use written.
    fn settle_last_use(&self, at_ms: i64, address: Option<IpAddr>) {
        if let Ok(mut written) = self.written_last_use.lock() {
            if at_ms >= written.0 {
                *written = (at_ms, address);
            }
        }
    }

    /// Adds back counts of a batch that could not be written.
    fn restore(&self, outcome: &str, count: u64) {
        let index = (0..OUTCOMES).find(|index| outcome_name(*index) == outcome);
        if let Some(index) = index {
            self.counts[index].fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// Every key's usage cell on this server.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    cells: Mutex<HashMap<KeyId, Arc<KeyUsageCell>>>,
}

impl UsageRecorder {
    /// The cell of `key_id`, created on first use.
    pub fn cell(&self, key_id: &KeyId) -> Option<Arc<KeyUsageCell>> {
        let mut cells = self.cells.lock().ok()?;
        Some(
            cells
                .entry(key_id.clone())
                .or_insert_with(|| Arc::new(KeyUsageCell::new(key_id)))
                .clone(),
        )
    }

    /// Takes every count, address and last use since the last drain, the
    /// counts attributed to `minute`. Cells idle for long are forgotten.
    pub fn drain(&self, minute: DateTime<Utc>) -> UsageBatch {
        let mut batch = UsageBatch::default();
        let Ok(mut cells) = self.cells.lock() else {
            return batch;
        };
        cells.retain(|_, cell| {
            if cell.drain_into(minute, &mut batch) {
                cell.idle_flushes.store(0, Ordering::Relaxed);
                return true;
            }
            let idle = cell.idle_flushes.fetch_add(1, Ordering::Relaxed) + 1;
            // A cell still held by a cached key is kept.
            idle < IDLE_FLUSHES_BEFORE_FORGET || Arc::strong_count(cell) > 1
        });
        batch
    }

    /// Records that `batch` was written: its addresses are not written again
    /// the same day, its last uses not before they move by a minute (or
    /// come from another address).
    pub fn settle(&self, batch: &UsageBatch) {
        let Ok(cells) = self.cells.lock() else {
            return;
        };
        for seen in &batch.addresses {
            if let (Some(cell), Ok(address)) = (cells.get(&seen.key_id), seen.address.parse()) {
                cell.settle_address(address, seen.at.timestamp_millis());
            }
        }
        for used in &batch.last_uses {
            if let Some(cell) = cells.get(&used.key_id) {
                let address = used.address.as_deref().and_then(|text| text.parse().ok());
                cell.settle_last_use(used.at.timestamp_millis(), address);
            }
        }
    }

    /// Puts back the counts of a batch that could not be written (addresses
    /// and last uses are dropped: the next use records them again).
    pub fn restore(&self, batch: &UsageBatch) {
        for delta in &batch.counts {
            if let Some(cell) = self.cell(&delta.key_id) {
                cell.restore(&delta.outcome, delta.count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_counted_apart() {
        for code in [
            ErrorCode::ApiKeyDisabled,
            ErrorCode::AddressNotAllowed,
            ErrorCode::InvalidScope,
            ErrorCode::InsufficientScope,
        ] {
            let index = Outcome::ClientError(code).index();
            assert!(index < ERROR_CODES, "{code:?}");
            assert_eq!(outcome_name(index), format!("4xx:{}", code.as_str()));
        }
    }

    #[test]
    fn every_code_has_its_index() {
        for (index, code) in ALL_CODES.iter().enumerate() {
            assert_eq!(*code as usize, index);
        }
    }

    #[test]
    fn counts_drain_once_and_restore() {
        let recorder = UsageRecorder::default();
        let cell = recorder.cell(&"key_1".into()).unwrap();
        let minute = crate::clock::from_millis(60_000);
        for _ in 0..3 {
            cell.count(Outcome::Success);
        }
        cell.count(Outcome::ClientError(ErrorCode::TokenExpired));
        cell.count(Outcome::LoginFailed);
        cell.note_use(61_000, Some("203.0.113.5".parse().unwrap()));
        cell.note_use(62_000, Some("203.0.113.5".parse().unwrap()));
        cell.note_use(63_000, Some("198.51.100.1".parse().unwrap()));
        let batch = recorder.drain(minute);
        let mut outcomes: Vec<(String, u64)> = batch
            .counts
            .iter()
            .map(|delta| (delta.outcome.clone(), delta.count))
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes,
            vec![
                ("2xx".to_owned(), 3),
                ("4xx:token_expired".to_owned(), 1),
                ("login_failed".to_owned(), 1)
            ]
        );
        assert_eq!(batch.addresses.len(), 2);
        assert_eq!(batch.last_uses.len(), 1);
        assert_eq!(batch.last_uses[0].address.as_deref(), Some("198.51.100.1"));
        assert_eq!(batch.last_uses[0].at.timestamp_millis(), 63_000);
        recorder.settle(&batch);
        let again = recorder.drain(minute);
        assert!(
            again.counts.is_empty() && again.addresses.is_empty() && again.last_uses.is_empty()
        );
        // The same address the same day is not written again, nor a last use
        // that moved by less than a minute from the same address.
        cell.note_use(64_000, Some("198.51.100.1".parse().unwrap()));
        let quiet = recorder.drain(minute);
        assert!(quiet.addresses.is_empty() && quiet.last_uses.is_empty());
        cell.note_use(
            64_000 + LAST_USE_PRECISION_MS,
            Some("198.51.100.2".parse().unwrap()),
        );
        let moved = recorder.drain(minute);
        assert_eq!(moved.addresses.len(), 1);
        assert_eq!(moved.last_uses.len(), 1);
        recorder.restore(&batch);
        assert_eq!(cell.pending(Outcome::Success), 3);
    }

    #[test]
    fn outcomes_of_statuses() {
        assert_eq!(Outcome::of_status(200, None), Outcome::Success);
        assert_eq!(Outcome::of_status(204, None), Outcome::Success);
        assert_eq!(
            Outcome::of_status(401, Some(ErrorCode::TokenRevoked)),
            Outcome::ClientError(ErrorCode::TokenRevoked)
        );
        assert_eq!(
            Outcome::of_status(502, Some(ErrorCode::UpstreamUnavailable)),
            Outcome::ServerError
        );
    }
}
