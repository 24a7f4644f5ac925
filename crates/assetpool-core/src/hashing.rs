//! A bounded pool for password hashing, off the async runtime.
//!
//! At most `workers` hashes run at once on tokio's blocking threads and at most
//! `queue` more wait. Anything beyond is refused at once with
//! [`ServiceError::Overloaded`], never queued without bound.

use crate::ServiceError;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Seconds a client is asked to wait when the pool is full.
pub const OVERLOADED_RETRY_AFTER_SECONDS: u64 = 1;

/// Size of the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingPoolSettings {
    /// Hashes running at once.
    pub workers: usize,
    /// Hashes allowed to wait for a worker.
    pub queue: usize,
}

impl Default for HashingPoolSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        HashingPoolSettings {
            workers: cores,
            queue: cores * 8,
        }
    }
}

/// The bounded hashing pool.
#[derive(Debug, Clone)]
pub struct HashingPool {
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    capacity: usize,
    worker_count: usize,
    rejected: Arc<std::sync::atomic::AtomicU64>,
}

impl HashingPool {
    /// A pool of the given size.
    pub fn new(settings: HashingPoolSettings) -> Self {
        let workers = settings.workers.max(1);
        HashingPool {
            admission: Arc::new(Semaphore::new(workers + settings.queue)),
            workers: Arc::new(Semaphore::new(workers)),
            capacity: workers + settings.queue,
            worker_count: workers,
            rejected: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Hashing jobs admitted and not yet finished (running or waiting).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Hashing jobs waiting for a worker (the queue depth).
    pub fn queued(&self) -> usize {
        self.in_flight()
            .saturating_sub(self.worker_count - self.workers.available_permits())
    }

    /// Jobs refused so far because the queue was full.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `job` on a blocking thread once a worker is free, or refuses at once
    /// when the queue is full.
    pub async fn run<F, R>(&self, job: F) -> Result<R, ServiceError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let admitted = self.admission.clone().try_acquire_owned().map_err(|_| {
            self.rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ServiceError::Overloaded {
                retry_after_seconds: OVERLOADED_RETRY_AFTER_SECONDS,
            }
        })?;
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::Internal("hashing pool closed".into()))?;
        let result = tokio::task::spawn_blocking(job)
            .await
            .map_err(|error| ServiceError::Internal(format!("hashing task failed: {error}")));
        drop(worker);
        drop(admitted);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_capacity() {
        let pool = HashingPool::new(HashingPoolSettings {
            workers: 1,
            queue: 1,
        });
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let mut running = Vec::new();
        for _ in 0..2 {
            let pool = pool.clone();
            let wait = wait.clone();
            running.push(tokio::spawn(async move {
                pool.run(move || {
                    let _ = wait.lock().map(|receiver| receiver.recv());
                })
                .await
            }));
        }
        while pool.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        let refused = pool.run(|| ()).await;
        assert!(matches!(refused, Err(ServiceError::Overloaded { .. })));
        assert_eq!(pool.rejected(), 1);
        assert_eq!(pool.queued(), 1);
        release.send(()).unwrap();
        release.send(()).unwrap();
        for task in running {
            assert!(task.await.unwrap().is_ok());
        }
        assert!(pool.run(|| 5).await.is_ok());
    }
}
