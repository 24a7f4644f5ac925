//! What the benchmark tools of `crates/assetpool-bench/src/bin` share.

use anyhow::Context as _;
use std::future::Future;

/// A multi-threaded tokio runtime with every driver, as the server runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `future` to its end on a [`runtime`].
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    runtime()?.block_on(future)
}
