//! What the layers record: the kind of an operation and, when it ends, an [`OpRecord`].

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3dlio_store_core::{Error, ErrorKind};

/// The operations the layers tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Get,
    /// A one-shot put, or a whole streaming write (from `writer()` to `complete()`).
    Put,
    /// One listing page (one request).
    List,
    Head,
    /// One delete, or one `delete_many` batch.
    Delete,
    Copy,
    /// One `write` call on a streaming (multipart) writer: the time the caller waited while
    /// the writer buffered the data and uploaded any parts that filled up. Metrics only; the
    /// op-log has one PUT row per streaming write, as warp does.
    Write,
}

impl OpKind {
    pub const ALL: [OpKind; 7] = [
        Self::Get,
        Self::Put,
        Self::List,
        Self::Head,
        Self::Delete,
        Self::Copy,
        Self::Write,
    ];

    /// The name in tables, op-logs and Prometheus labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::List => "LIST",
            Self::Head => "HEAD",
            Self::Delete => "DELETE",
            Self::Copy => "COPY",
            Self::Write => "WRITE",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Ok,
    Failed(&'a Error),
    /// The caller gave up: dropped a GET body before its end, aborted or dropped a writer.
    Abandoned(&'static str),
}

impl Outcome<'_> {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    /// A short stable label: the error kind's name, or `abandoned`.
    pub fn label(&self) -> Option<&'static str> {
        match self {
            Self::Ok => None,
            Self::Failed(e) => Some(error_label(e.kind())),
            Self::Abandoned(_) => Some("abandoned"),
        }
    }
}

/// Metric label of an error kind (snake case, stable).
pub fn error_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::AlreadyExists => "already_exists",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::Unauthenticated => "unauthenticated",
        ErrorKind::PreconditionFailed => "precondition_failed",
        ErrorKind::RangeNotSatisfiable => "range_not_satisfiable",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::NotSupported => "not_supported",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Interrupted => "interrupted",
        _ => "other",
    }
}

/// One finished operation, as a layer hands it to its [`Observer`](crate::Observer).
#[derive(Debug, Clone, Copy)]
pub struct OpRecord<'a> {
    pub op: OpKind,
    /// The backend: the store's scheme (`s3`, `file`, `az`, `mem`, ...).
    pub backend: &'a str,
    /// The store's base URI (`s3://bucket/`); not redacted.
    pub store_uri: &'a Arc<str>,
    /// The key (for a copy, the source; for a batch delete, the first key). Empty when the
    /// observer asked for no detail.
    pub key: &'a str,
    /// Objects the operation covered: 1, the keys of a batch delete, the entries of a
    /// listing page.
    pub n_objects: u64,
    /// Bytes read or written (for a failed or abandoned GET, the bytes delivered).
    pub bytes: u64,
    /// Wall-clock start, when the observer asked for detail.
    pub start: Option<SystemTime>,
    /// From the start to the first body byte delivered to the caller (GET only).
    pub first_byte: Option<Duration>,
    /// From the start to the end (for a GET, until the body was read to its end).
    pub duration: Duration,
    pub outcome: Outcome<'a>,
    /// The OS thread that finished the operation, numbered from 1 in order of first use.
    pub thread: u32,
}

static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD_NO: Cell<u32> = const { Cell::new(0) };
}

/// A small number for the calling thread, the same for its whole life.
pub fn thread_no() -> u32 {
    THREAD_NO.with(|c| {
        let v = c.get();
        if v != 0 {
            return v;
        }
        let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        c.set(n);
        n
    })
}

/// The scheme of a base URI (`s3` of `s3://bucket/`), the backend label.
pub fn backend_of(base_uri: &str) -> &str {
    base_uri
        .split_once("://")
        .map_or("unknown", |(scheme, _)| scheme)
}
