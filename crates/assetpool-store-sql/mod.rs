//! The storage code both backends share (see this folder's README): the
//! storage traits implemented once, for the backend's store type, with the
//! backend's `crate::dialect`.

pub(crate) mod alerts;
pub(crate) mod applications;
pub(crate) mod audit;
pub(crate) mod changes;
pub(crate) mod console_sessions;
pub(crate) mod keys;
pub(crate) mod migrations;
pub(crate) mod rows;
pub(crate) mod sessions;
pub(crate) mod signing_keys;
pub(crate) mod throttle;
pub(crate) mod transfer;
pub(crate) mod usage;
pub(crate) mod users;
