//! The threads that do a store's blocking file I/O.
//!
//! tokio's blocking pool starts a thread per concurrent call and parks it after each one;
//! for page-cache reads of small files, which take microseconds, the park/unpark hand-offs
//! cost more than the I/O (measured: 16 futex calls per 8 KiB file, half the throughput).
//! A few threads that pull jobs from one queue stay busy while work is queued, and park
//! only when there is none.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::thread;

use crossbeam_channel::{unbounded, Receiver, Sender};
use s3dlio_store_core::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of I/O threads, started on first use, stopped when the pool is dropped.
#[derive(Debug)]
pub struct IoPool {
    threads: usize,
    name: &'static str,
    queue: Sender<Job>,
    /// Held until the first job starts the threads.
    idle: Mutex<Option<Receiver<Job>>>,
}

impl IoPool {
    /// `threads` threads named `s3dlio-fs-io-N`.
    pub fn new(threads: usize) -> Self {
        Self::named(threads, "s3dlio-fs-io")
    }

    /// `threads` threads named `{name}-N`.
    pub fn named(threads: usize, name: &'static str) -> Self {
        let (queue, jobs) = unbounded();
        Self {
            threads: threads.max(1),
            name,
            queue,
            idle: Mutex::new(Some(jobs)),
        }
    }

    fn start(&self) -> Result<()> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Some(jobs) = idle.take() else {
            return Ok(());
        };
        for i in 0..self.threads {
            let jobs = jobs.clone();
            thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || {
                    // Ends when every sender (the pool) is gone.
                    for job in jobs {
                        job();
                    }
                })
                .map_err(|e| Error::from_io(e, "starting file I/O threads"))?;
        }
        Ok(())
    }

    /// Run `f` on an I/O thread and await its result. A panic in `f` becomes an error.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(f).await
    }

    /// Queue `f` on the I/O threads now (not when the future is first polled, unlike
    /// [`run`](Self::run)), so several jobs can be in flight while the caller awaits them in
    /// order. Dropping the future does not cancel the job; its result is discarded.
    pub fn submit<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.start().and_then(|()| {
            let job: Job = Box::new(move || {
                let out = catch_unwind(AssertUnwindSafe(f))
                    .unwrap_or_else(|_| Err(Error::other("file I/O task panicked")));
                // The caller may have gone away (a dropped future); nothing to tell it then.
                let _ = tx.send(out);
            });
            self.queue
                .send(job)
                .map_err(|_| Error::other("file I/O threads have stopped"))
        });
        async move {
            queued?;
            rx.await
                .map_err(|_| Error::other("file I/O task ended without a result"))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_turns_panics_into_errors() {
        let pool = IoPool::new(2);
        let results = futures::future::join_all((0..50).map(|i| pool.run(move || Ok(i * 2)))).await;
        let sum: i32 = results.into_iter().map(|r| r.unwrap()).sum();
        assert_eq!(sum, (0..50).map(|i| i * 2).sum());
        let err = pool.run::<(), _>(|| panic!("boom")).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        // The thread survived the panic.
        assert_eq!(pool.run(|| Ok(7)).await.unwrap(), 7);
    }
}
