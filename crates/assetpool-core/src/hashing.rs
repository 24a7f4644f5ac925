//! A bounded pool for password hashing, off the async runtime.
//!
//! At most `workers` hashes run at once, on `workers` threads of the pool's
//! own, and at most `queue` more wait. Anything beyond is refused at once
//! with [`ServiceError::Overloaded`], never queued without bound.
//!
//! The place a job holds in the pool belongs to the job, not to its caller:
//! it moves into the job and is released when the hash ends. A caller that
//! goes away (a client closing its connection drops the request's future)
//! therefore cannot free a place while its Argon2 job still runs.
//!
//! Why threads of its own rather than tokio's blocking pool: each Argon2id
//! verification allocates its memory (19 MiB by default) on the thread that
//! runs it, and the allocator keeps freed memory in per-thread arenas. On a
//! fixed set of threads that memory is reused job after job, so the memory
//! spent on hashing stays near `workers` times one job's; on a blocking pool
//! that starts and retires threads on demand it spreads over many arenas.
//! The pool is a channel and a loop per thread, too small to need a crate.

use crate::ServiceError;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

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

/// A job for a worker thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The bounded hashing pool. Clones share the pool; its threads end when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct HashingPool {
    admission: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    capacity: usize,
    busy: Arc<AtomicUsize>,
    rejected: Arc<AtomicU64>,
}

impl HashingPool {
    /// A pool of the given size; starts its worker threads.
    pub fn new(settings: HashingPoolSettings) -> Self {
        let workers = settings.workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for number in 0..workers {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("password-hashing-{number}"))
                .spawn(move || work(&queue));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        HashingPool {
            admission: Arc::new(Semaphore::new(workers + settings.queue)),
            jobs,
            capacity: workers + settings.queue,
            busy: Arc::new(AtomicUsize::new(0)),
            rejected: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hashing jobs admitted and not yet finished (running or waiting).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Hashing jobs waiting for a worker (the queue depth).
    pub fn queued(&self) -> usize {
        self.in_flight()
            .saturating_sub(self.busy.load(Ordering::Relaxed))
    }

    /// Jobs refused so far because the queue was full.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Takes a place in the pool, or refuses at once when it is full. The
    /// place is held until the [`Admission`] is dropped unused or its job has
    /// run.
    pub fn admit(&self) -> Result<Admission, ServiceError> {
        let admitted = self.admission.clone().try_acquire_owned().map_err(|_| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            ServiceError::Overloaded {
                retry_after_seconds: OVERLOADED_RETRY_AFTER_SECONDS,
            }
        })?;
        Ok(Admission {
            admitted,
            pool: self.clone(),
        })
    }

    /// Runs `job` on a worker thread once one is free, or refuses at once
    /// when the queue is full.
    pub async fn run<F, R>(&self, job: F) -> Result<R, ServiceError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.admit()?.run(job).await
    }
}

/// A worker thread: runs jobs until the pool is dropped.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let next = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match next {
            // A panicking job must not take its thread down with it; its
            // caller sees the job fail (its answer is dropped).
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Counts a job as running while it lives (also when the job panics).
struct Working(Arc<AtomicUsize>);

impl Working {
    fn start(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::Relaxed);
        Working(busy)
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place in the [`HashingPool`], taken before the job is known to be needed
/// (so that a login can be refused with 503 before anything else is done).
#[derive(Debug)]
pub struct Admission {
    admitted: OwnedSemaphorePermit,
    pool: HashingPool,
}

impl Admission {
    /// Runs `job` on a worker thread once one is free. The place moves into
    /// the job: it is released when `job` returns, even if the caller stopped
    /// waiting for it.
    pub async fn run<F, R>(self, job: F) -> Result<R, ServiceError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let Admission { admitted, pool } = self;
        let (answer, result) = oneshot::channel();
        let busy = Arc::clone(&pool.busy);
        let task: Job = Box::new(move || {
            let working = Working::start(busy);
            let outcome = job();
            drop(working);
            drop(admitted);
            // The caller may be gone; the work is done either way.
            let _ = answer.send(outcome);
        });
        pool.jobs
            .send(task)
            .map_err(|_| ServiceError::Internal("hashing pool closed".into()))?;
        result
            .await
            .map_err(|_| ServiceError::Internal("a hashing job failed".into()))
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
        // One job runs (on the one worker), the other waits.
        while pool.in_flight() < 2 || pool.queued() != 1 {
            tokio::task::yield_now().await;
        }
        let refused = pool.run(|| ()).await;
        assert!(matches!(refused, Err(ServiceError::Overloaded { .. })));
        assert_eq!(pool.rejected(), 1);
        release.send(()).unwrap();
        release.send(()).unwrap();
        for task in running {
            assert!(task.await.unwrap().is_ok());
        }
        assert!(pool.run(|| 5).await.is_ok());
    }

    #[tokio::test]
    async fn a_cancelled_caller_keeps_its_slot_until_the_hash_ends() {
        let pool = HashingPool::new(HashingPoolSettings {
            workers: 1,
            queue: 0,
        });
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let caller = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = started.send(());
                    let _ = wait.recv();
                })
                .await
            })
        };
        running.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        // The job still runs: its slot is still taken and counted.
        assert_eq!(pool.in_flight(), 1);
        assert!(matches!(
            pool.run(|| ()).await,
            Err(ServiceError::Overloaded { .. })
        ));
        release.send(()).unwrap();
        while pool.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(pool.run(|| 5).await.is_ok());
    }
}
