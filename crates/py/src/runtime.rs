//! One tokio runtime and one set of backends per process, made on first use.
//!
//! A forked child (PyTorch DataLoader workers under `fork`) inherits the parent's memory but
//! none of its threads: the parent's runtime is dead there. So the state remembers the pid
//! that made it, and a child builds its own on first use. The parent's copy is leaked in the
//! child, never dropped: dropping it would wait for threads that do not exist.

use std::future::Future;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use s3dlio_cli::args::S3Flags;
use s3dlio_cli::commands::Ctx;
use s3dlio_metrics::{GlobalOpLog, Tracing};

use crate::errors::runtime_error;

pub struct State {
    pub rt: tokio::runtime::Runtime,
    /// Backends (file://, s3://, ...) and the observing layer of the process-wide op-log,
    /// shared with the CLI's commands that the module runs (upload, download, put).
    pub ctx: Ctx,
}

static STATE: Mutex<Option<(u32, Arc<State>)>> = Mutex::new(None);

/// This process's state, made on first use (and again in a forked child).
pub fn state() -> PyResult<Arc<State>> {
    let pid = std::process::id();
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, s)) = &*guard {
        if *owner == pid {
            return Ok(Arc::clone(s));
        }
    }
    if let Some(inherited) = guard.take() {
        // From the parent, across fork: its threads are gone (see the module docs).
        std::mem::forget(inherited);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("s3dlio")
        .build()
        .map_err(|e| runtime_error(format!("cannot start the I/O runtime: {e}")))?;
    // Summaries and progress bars are for the command line, not for library calls.
    s3dlio_cli::progress::set_quiet(true);
    let ctx = Ctx::new(
        S3Flags::default(),
        false,
        Some((None, Some(GlobalOpLog), Tracing)),
    )
    .map_err(|e| runtime_error(e.to_string()))?;
    let s = Arc::new(State { rt, ctx });
    *guard = Some((pid, Arc::clone(&s)));
    Ok(s)
}

/// Run `f` on this process's runtime with the GIL released.
pub fn block_on<F, T>(py: Python<'_>, f: impl FnOnce(Arc<State>) -> F + Send) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    let s = state()?;
    py.detach(move || s.rt.block_on(f(Arc::clone(&s))))
}
