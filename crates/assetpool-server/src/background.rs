//! Background tasks: following the change feed (revocations reach this
//! server within a second), writing key usage in batches, and housekeeping.

use assetpool_core::AuthService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// Handles of the running tasks.
#[derive(Debug)]
pub struct BackgroundTasks {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut work: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => work().await,
                _ = stop.changed() => break,
            }
        }
    })
}

/// Applies the change feed whenever storage announces a change, and at least
/// every `interval` (storage without notifications is polled).
fn follow_changes(
    service: Arc<AuthService>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = service.apply_changes().await {
                tracing::warn!(%error, "could not follow the change feed");
            }
            tokio::select! {
                () = service.store().wait_for_changes(interval) => {}
                _ = stop.changed() => break,
            }
        }
    })
}

impl BackgroundTasks {
    /// Starts the tasks.
    pub fn start(
        service: Arc<AuthService>,
        change_poll_interval: Duration,
        usage_flush_interval: Duration,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let follower = service.clone();
        let flusher = service.clone();
        let keeper = service;
        let handles = vec![
            follow_changes(follower, change_poll_interval, stopped.clone()),
            every(usage_flush_interval, stopped.clone(), move || {
                let service = flusher.clone();
                async move {
                    if let Err(error) = service.flush_usage().await {
                        tracing::warn!(%error, "could not write key usage");
                    }
                }
            }),
            every(HOUSEKEEPING_INTERVAL, stopped, move || {
                let service = keeper.clone();
                async move {
                    if let Err(error) = service.housekeeping().await {
                        tracing::warn!(%error, "housekeeping failed");
                    }
                }
            }),
        ];
        BackgroundTasks { stop, handles }
    }

    /// Stops the tasks and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}
