//! Background tasks: following the change feed (revocations reach this
//! server within a second), writing key usage in batches (on wall-clock
//! multiples of the flush interval), storing alerts, and housekeeping.

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

/// Like [`every`], with ticks on wall-clock multiples of `interval` (so that
/// usage flushed at a tick belongs to the interval that just ended).
fn every_aligned<F, Fut>(
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut work: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let period = interval.as_millis().max(1);
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        let wait = u64::try_from(period - since_epoch % period).unwrap_or(0);
        let first = tokio::time::Instant::now() + Duration::from_millis(wait);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => work().await,
                _ = stop.changed() => break,
            }
        }
    })
}

/// Stores queued alert triggers (see `assetpool_core::alerts`); on stop, stores
/// what is still queued before returning.
fn raise_alerts(service: Arc<AuthService>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut queue) = service.alerts().take_queue() else {
            return;
        };
        loop {
            tokio::select! {
                trigger = queue.recv() => match trigger {
                    Some(trigger) => raise(&service, trigger).await,
                    None => break,
                },
                _ = stop.changed() => {
                    while let Ok(trigger) = queue.try_recv() {
                        raise(&service, trigger).await;
                    }
                    break;
                }
            }
        }
    })
}

async fn raise(service: &AuthService, trigger: assetpool_core::alerts::Trigger) {
    // A storage hiccup gets two more tries; the trigger is dropped after that.
    for attempt in 0..3u64 {
        match service
            .alerts()
            .raise(service.store().as_ref(), trigger.clone())
            .await
        {
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, rule = %trigger.rule, attempt, "could not store an alert");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
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
        let alerter = service.clone();
        let keeper = service;
        let handles = vec![
            follow_changes(follower, change_poll_interval, stopped.clone()),
            raise_alerts(alerter, stopped.clone()),
            every_aligned(usage_flush_interval, stopped.clone(), move || {
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

    /// Starts one more task on the same stop signal (e.g. [`crate::webhooks::spawn`]).
    pub fn add(&mut self, start: impl FnOnce(watch::Receiver<bool>) -> JoinHandle<()>) {
        self.handles.push(start(self.stop.subscribe()));
    }

    /// Stops the tasks and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}
