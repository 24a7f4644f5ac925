//! The storage contract test suite of assetpool: a test-support crate, not a
//! library for production code.
//!
//! Every test is written once, as a `pub async fn` taking a fresh, empty,
//! migrated store as `Arc<dyn Store>`, so that every backend (SQLite today,
//! PostgreSQL next) runs the very same tests. A backend runs the suite with
//! [`store_contract_tests!`], from one of its integration tests:
//!
//! ```text
//! async fn fresh_store() -> assetpool_store_tests::FreshStore {
//!     let directory = tempfile::tempdir().unwrap();
//!     let url = format!("sqlite://{}", directory.path().join("test.db").display());
//!     let store = SqliteStore::open(&url).await.unwrap();
//!     FreshStore::with_guard(std::sync::Arc::new(store), directory)
//! }
//!
//! assetpool_store_tests::store_contract_tests!(fresh_store());
//! ```
//!
//! Tests of moving data between stores (`transfer`) take two fresh stores of
//! the same backend, a source and a target: the macro calls the factory twice
//! for them.
//!
//! The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) among
//! its dev-dependencies.
//!
//! Being test code, the suite may `unwrap` and `panic`: a failed expectation
//! is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod applications;
pub mod audit;
pub mod changes;
pub mod console_sessions;
pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod monitoring;
pub mod postgres;
pub mod scopes;
pub mod sessions;
pub mod signing_keys;
mod support;
pub mod transfer;
pub mod users;

use assetpool_core::store::prelude::*;
use std::any::Any;
use std::sync::Arc;

/// A fresh store for one test, with whatever must outlive it (a temporary
/// directory, a database to drop): the guard is dropped after the test body
/// returned and released its handles to the store.
pub struct FreshStore {
    store: Arc<dyn Store>,
    guard: Option<Box<dyn Any + Send>>,
}

impl std::fmt::Debug for FreshStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FreshStore")
            .field("guarded", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl FreshStore {
    /// A store that needs nothing kept alive beside it.
    pub fn new(store: Arc<dyn Store>) -> Self {
        FreshStore { store, guard: None }
    }

    /// A store whose backing resources live as long as `guard`.
    pub fn with_guard(store: Arc<dyn Store>, guard: impl Any + Send) -> Self {
        FreshStore {
            store,
            guard: Some(Box::new(guard)),
        }
    }

    /// The store, and the guard to drop once the store is no longer used.
    pub fn into_parts(self) -> (Arc<dyn Store>, Option<Box<dyn Any + Send>>) {
        (self.store, self.guard)
    }
}

impl From<Arc<dyn Store>> for FreshStore {
    fn from(store: Arc<dyn Store>) -> Self {
        FreshStore::new(store)
    }
}

/// What a store factory may give: a store, or `None` when its backend is not
/// reachable here and the test is skipped (the factory says so on stderr).
pub trait IntoFreshStore {
    /// The fresh store, or `None` to skip.
    fn into_fresh_store(self) -> Option<FreshStore>;
}

impl IntoFreshStore for FreshStore {
    fn into_fresh_store(self) -> Option<FreshStore> {
        Some(self)
    }
}

impl IntoFreshStore for Arc<dyn Store> {
    fn into_fresh_store(self) -> Option<FreshStore> {
        Some(FreshStore::new(self))
    }
}

impl IntoFreshStore for Option<FreshStore> {
    fn into_fresh_store(self) -> Option<FreshStore> {
        self
    }
}

/// Expands to one `#[tokio::test]` per contract test, each calling the test
/// body with a fresh store from `$make.await`, an async expression giving a
/// [`FreshStore`] or an `Arc<dyn Store>`.
///
/// Tests are grouped in modules named like this crate's (`keys`, `lifecycle`, `limits`,
/// `users`, `sessions`, `scopes`, `signing_keys`, `changes`, `monitoring`,
/// `applications`, `audit`, `transfer`);
/// the modules import the invoking module's items, so `$make` may call a
/// function defined beside the invocation. The `transfer` tests get two stores from two calls of `$make`.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::__store_contract_test_modules! { ($make)
            keys {
                applications_round_trip,
                api_keys_are_found_by_hash_and_id,
                keys_expiring_in_a_period_are_listed,
                duplicate_key_hash_conflicts,
                list_api_keys_filters_by_environment_oldest_first,
                revoke_api_key_records_time_and_reason,
                revoking_the_last_usable_key_revokes_the_sessions,
                rotate_api_key_stores_the_successor,
                rotate_api_key_refuses_rotated_revoked_and_expired_keys,
                concurrent_rotations_have_one_winner,
                record_api_key_use_keeps_the_latest_time,
                last_uses_of_many_keys_are_all_written,
                keys_are_listed_a_page_at_a_time,
            }
            lifecycle {
                disabling_and_enabling_a_key_is_announced,
                revoked_keys_are_not_disabled_or_enabled,
                refresh_waits_while_the_session_key_is_disabled,
                a_disabled_key_keeps_its_application_sessions,
                key_updates_store_expiry_metadata_owner_and_allow_list,
            }
            limits {
                key_limits_are_stored_and_updated,
                quota_usage_adds_up_across_flushes,
                login_attempts_count_per_pair_address_and_account,
                concurrent_attempts_are_decided_one_by_one,
                login_success_unlock_and_prune,
                a_login_refused_for_its_scopes_is_taken_back,
            }
            users {
                users_are_created_found_and_listed,
                duplicate_email_conflicts,
                set_password_revokes_live_sessions,
                upgrade_password_hash_keeps_sessions,
                upgrade_password_hash_never_replaces_a_changed_password,
                sessions_open_only_for_an_unchanged_enabled_user,
                disabling_a_user_revokes_sessions_and_enabling_does_not,
                unknown_users_are_not_found,
                users_are_listed_a_page_at_a_time,
            }
            sessions {
                refresh_renews_the_session,
                reused_refresh_token_revokes_the_session,
                refresh_refuses_unknown_foreign_and_expired_tokens,
                refresh_refuses_disabled_users,
                concurrent_spends_renew_exactly_once,
                revoke_session_reports_whether_it_revoked,
                revoked_sessions_lists_sessions_until_their_tokens_expire,
            }
            console_sessions {
                console_sessions_open_read_touch_and_end,
                console_sessions_open_only_for_the_verified_enabled_user,
                console_sessions_are_pruned_after_their_end,
                list_application_api_keys_lists_one_application,
                filter_api_keys_filters_searches_and_pages,
            }
            signing_keys {
                first_signing_key_is_inserted_once,
                concurrent_first_signing_keys_insert_one,
                rotate_signing_key_retires_the_active_key,
                reseal_signing_keys_is_all_or_nothing,
                revoke_signing_key_refuses_the_active_key_and_announces,
            }
            monitoring {
                key_usage_adds_up_per_minute_hour_and_day,
                key_addresses_and_networks,
                key_last_use_keeps_the_newest,
                concurrent_flushes_add_up,
                prune_key_usage_keeps_recent_rows,
                raise_alert_updates_the_open_episode,
                concurrent_raises_create_one_alert,
                alerts_are_listed_and_acknowledged,
                webhook_deliveries_are_claimed_with_a_lease,
                key_webhooks_are_set_and_removed,
                audit_log_is_appended_and_listed,
                application_alerts_webhooks_and_deliveries,
                usage_totals_sum_every_key,
            }
            applications {
                applications_are_listed_a_page_at_a_time_with_their_members,
                members_are_added_changed_and_removed,
                members_only_applications_admit_only_members,
                switching_members_only_on_ends_the_sessions_of_non_members,
                removing_a_member_ends_their_sessions_in_members_only_applications,
                refresh_refuses_users_the_application_does_not_admit,
            }
            audit {
                appends_form_one_hash_chain,
                audited_change_and_its_entry_commit_together,
                concurrent_appends_keep_one_chain,
            }
            scopes {
                key_scopes_are_stored_and_updated,
                narrowing_a_user_revokes_the_sessions_outside_the_new_set,
                sessions_keep_their_scopes_and_open_only_for_unchanged_user_scopes,
            }
            changes {
                ping_answers,
                issuer_is_recorded_once,
                longest_token_ttl_keeps_the_maximum,
                change_feed_is_ordered_and_limited,
                prune_changes_keeps_the_newest,
                prune_changes_records_its_watermark,
                a_follower_behind_the_pruned_feed_drops_its_caches,
            }
        }
        $crate::__store_contract_pair_test_modules! { ($make)
            transfer {
                export_then_import_gives_equal_records,
                import_refuses_a_non_empty_store,
                import_refuses_a_store_with_audit_entries,
                import_is_all_or_nothing_in_any_order,
            }
        }
    };
}

/// The expansion of [`store_contract_tests!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_test_modules {
    (($make:expr) $($module:ident { $($test:ident),* $(,)? })*) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        let Some(fresh) = $crate::IntoFreshStore::into_fresh_store($make.await)
                        else {
                            return;
                        };
                        let (store, guard) = fresh.into_parts();
                        $crate::$module::$test(store).await;
                        drop(guard);
                    }
                )*
            }
        )*
    };
}

/// The expansion of [`store_contract_tests!`] for tests taking two fresh
/// stores (a source and a target); not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_pair_test_modules {
    (($make:expr) $($module:ident { $($test:ident),* $(,)? })*) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        let Some(source) = $crate::IntoFreshStore::into_fresh_store($make.await)
                        else {
                            return;
                        };
                        let Some(target) = $crate::IntoFreshStore::into_fresh_store($make.await)
                        else {
                            return;
                        };
                        let (source, source_guard) = source.into_parts();
                        let (target, target_guard) = target.into_parts();
                        $crate::$module::$test(source, target).await;
                        drop((source_guard, target_guard));
                    }
                )*
            }
        )*
    };
}
