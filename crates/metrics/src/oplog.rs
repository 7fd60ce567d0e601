//! The operation log: one row per operation in MinIO warp's TSV format, zstd-compressed.
//!
//! ```text
//! idx thread op client_id n_objects bytes endpoint file error start first_byte end duration_ns
//! ```
//!
//! (tab-separated). Rows go through a bounded channel to a writer thread, which numbers,
//! formats, compresses and writes them. By default nothing is ever dropped: when the
//! channel is full the operation that finished waits for room (back-pressure), so memory
//! stays bounded and the log complete. In lossy mode a full channel drops the row instead
//! and counts it; the count is reported by [`OpLog::finish`] and written at the end of the
//! log as a `#` comment line, which warp's reader skips.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::layer::{ObservedStore, Observer};
use crate::op::{OpKind, OpRecord, Outcome};
use crate::redact::redact;
use crate::time::{TimeWriter, Timestamp};

/// The header line, as warp writes it.
pub const HEADER: &str =
    "idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror\tstart\tfirst_byte\tend\tduration_ns";

/// A store whose operations are written to an [`OpLog`].
pub type OpLogStore<S> = ObservedStore<S, OpLogRecorder>;

/// How an op-log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpLogConfig {
    /// Rows that may wait for the writer thread (default 65,536, about 10 MiB at most).
    pub capacity: usize,
    /// Drop rows (and count them) rather than make operations wait when the writer falls
    /// behind. Default: false, lossless.
    pub lossy: bool,
    /// The `client_id` column: who wrote the log (default: the host name).
    pub client_id: String,
    /// Nanoseconds added to every timestamp, to align the clocks of several clients of one
    /// distributed run (each measures its offset to a reference clock and sets it here).
    pub clock_offset_ns: i64,
    /// zstd-compress the log (default true, as warp writes it; the reader takes either).
    pub compress: bool,
    /// zstd level (default 1: the fastest, and TSV of timestamps compresses well anyway).
    pub zstd_level: i32,
}

impl Default for OpLogConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            lossy: false,
            client_id: default_client_id(),
            clock_offset_ns: 0,
            compress: true,
            zstd_level: 1,
        }
    }
}

fn default_client_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "s3dlio".to_owned())
}

impl OpLogConfig {
    /// The defaults with the environment on top: `S3DLIO_OPLOG_BUF` (capacity),
    /// `S3DLIO_OPLOG_LOSSY` (`1`/`true`), `S3DLIO_OPLOG_CLIENT_ID`,
    /// `S3DLIO_OPLOG_CLOCK_OFFSET_NS`.
    pub fn from_env() -> io::Result<Self> {
        let mut c = Self::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bad = |name: &str, v: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}={v}: not a number"),
            )
        };
        if let Some(v) = var("S3DLIO_OPLOG_BUF") {
            c.capacity = v.parse().map_err(|_| bad("S3DLIO_OPLOG_BUF", &v))?;
        }
        if let Some(v) = var("S3DLIO_OPLOG_LOSSY") {
            c.lossy = matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on");
        }
        if let Some(v) = var("S3DLIO_OPLOG_CLIENT_ID") {
            c.client_id = v;
        }
        if let Some(v) = var("S3DLIO_OPLOG_CLOCK_OFFSET_NS") {
            c.clock_offset_ns = v
                .parse()
                .map_err(|_| bad("S3DLIO_OPLOG_CLOCK_OFFSET_NS", &v))?;
        }
        Ok(c)
    }
}

/// One row on its way to the writer thread (formatted there, off the operation's path).
struct Row {
    op: OpKind,
    thread: u32,
    n_objects: u64,
    bytes: u64,
    store_uri: Arc<str>,
    key: String,
    error: Option<String>,
    start: Timestamp,
    first_byte_ns: Option<u64>,
    duration_ns: u64,
}

enum Msg {
    Row(Box<Row>),
    Finish,
}

#[derive(Debug)]
struct Shared {
    lossy: bool,
    dropped: AtomicU64,
    /// Set by `finish`; rows recorded after it are counted as dropped.
    closed: AtomicBool,
}

/// Where rows are sent; cheap to clone, one per store layer. Rows sent after the log was
/// finished are dropped and counted.
#[derive(Clone)]
pub struct OpLogRecorder {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OpLogRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpLogRecorder")
            .field("lossy", &self.shared.lossy)
            .finish()
    }
}

impl OpLogRecorder {
    /// Rows waiting for the writer thread.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Send one row: waits for room unless lossy.
    fn send(&self, row: Row) {
        let msg = Msg::Row(Box::new(row));
        let sent = if self.shared.lossy {
            match self.tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            }
        } else {
            self.tx.send(msg).is_ok()
        };
        if !sent {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Observer for OpLogRecorder {
    const DETAIL: bool = true;

    fn record(&self, rec: &OpRecord<'_>) {
        // Streaming writes are one PUT row each; their write calls are metrics only.
        if rec.op == OpKind::Write {
            return;
        }
        if self.shared.closed.load(Ordering::Relaxed) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let error = match rec.outcome {
            Outcome::Ok => None,
            Outcome::Failed(e) => Some(e.to_string()),
            Outcome::Abandoned(why) => Some(format!("{why} after {} bytes", rec.bytes)),
        };
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // The start on the wall clock; first byte and end are that plus monotonic
        // durations, so `end - start` is exactly `duration_ns`.
        let start = Timestamp::from_system_time(rec.start.unwrap_or_else(SystemTime::now));
        self.send(Row {
            op: rec.op,
            thread: rec.thread,
            n_objects: rec.n_objects,
            bytes: rec.bytes,
            store_uri: Arc::clone(rec.store_uri),
            key: rec.key.to_owned(),
            error,
            start,
            first_byte_ns: rec.first_byte.map(nanos),
            duration_ns: nanos(rec.duration),
        });
    }
}

/// What a finished log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpLogStats {
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Rows dropped: in lossy mode when the writer fell behind, and in any mode for
    /// operations that finished after the log did.
    pub dropped: u64,
}

/// An open op-log: a file and the thread writing it. Hand [`recorder`](Self::recorder)s to
/// store layers; [`finish`](Self::finish) to flush and close. Dropping it finishes it too
/// (ignoring errors).
#[derive(Debug)]
pub struct OpLog {
    path: PathBuf,
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<u64>>>,
}

impl OpLog {
    /// Create (or truncate) `path` and start writing it with the default settings.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::with_config(path, OpLogConfig::default())
    }

    pub fn with_config(path: impl AsRef<Path>, config: OpLogConfig) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("op-log {}: {e}", path.display())))?;
        let out = if config.compress {
            Output::Zstd(zstd::stream::write::Encoder::new(file, config.zstd_level)?)
        } else {
            Output::Plain(file)
        };
        let (tx, rx) = bounded(config.capacity.max(1));
        let shared = Arc::new(Shared {
            lossy: config.lossy,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("s3dlio-oplog".into())
            .spawn(move || write_rows(out, rx, config, sh))?;
        Ok(Self {
            path,
            tx,
            shared,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle for store layers to send rows with.
    pub fn recorder(&self) -> OpLogRecorder {
        OpLogRecorder {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Wrap `store` so that its operations are logged here.
    pub fn wrap<S: s3dlio_store_core::ObjectStore>(&self, store: S) -> OpLogStore<S> {
        ObservedStore::new(store, self.recorder())
    }

    /// Rows dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Write every row sent so far, the closing comment, and close the file.
    pub fn finish(mut self) -> io::Result<OpLogStats> {
        self.close()
    }

    fn close(&mut self) -> io::Result<OpLogStats> {
        let Some(thread) = self.thread.take() else {
            return Err(io::Error::other("op-log already finished"));
        };
        // Rows already queued are written before this; a blocking send so it is never lost.
        let _ = self.tx.send(Msg::Finish);
        let rows = thread
            .join()
            .map_err(|_| io::Error::other("op-log writer thread panicked"))??;
        Ok(OpLogStats {
            path: self.path.clone(),
            rows,
            dropped: self.dropped(),
        })
    }
}

impl Drop for OpLog {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.close();
        }
    }
}

/// The writer thread: rows in, TSV out. Returns the number of rows written.
fn write_rows(
    out: Output,
    rx: Receiver<Msg>,
    config: OpLogConfig,
    shared: Arc<Shared>,
) -> io::Result<u64> {
    let mut w = BufWriter::with_capacity(256 << 10, out);
    writeln!(w, "{HEADER}")?;
    let client_id = clean(&config.client_id).into_owned();
    let offset = i128::from(config.clock_offset_ns);
    let mut times = TimeWriter::default();
    let mut idx: u64 = 0;
    let mut endpoint: Option<(Arc<str>, String)> = None;
    // Ends on Finish, or when every sender is gone.
    while let Ok(Msg::Row(row)) = rx.recv() {
        if endpoint
            .as_ref()
            .is_none_or(|(raw, _)| !Arc::ptr_eq(raw, &row.store_uri))
        {
            let clean_uri = clean(&redact(&row.store_uri)).into_owned();
            endpoint = Some((Arc::clone(&row.store_uri), clean_uri));
        }
        let ep = endpoint.as_ref().map_or("", |(_, e)| e.as_str());
        write!(
            w,
            "{idx}\t{}\t{}\t{client_id}\t{}\t{}\t{ep}\t",
            row.thread,
            row.op.as_str(),
            row.n_objects,
            row.bytes,
        )?;
        // The file is the object's URI; a key that could hold a query string or user
        // info is redacted with its store URI, as one URI.
        if row.key.contains(['?', '@', '=', '\t', '\n', '\r']) {
            let file = format!("{}{}", row.store_uri, row.key);
            w.write_all(clean(&redact(&file)).as_bytes())?;
        } else {
            write!(w, "{ep}{}", row.key)?;
        }
        w.write_all(b"\t")?;
        if let Some(e) = row.error.as_deref() {
            w.write_all(clean(&redact(e)).as_bytes())?;
        }
        w.write_all(b"\t")?;
        let start = row.start.offset(offset);
        times.write(&mut w, start)?;
        w.write_all(b"\t")?;
        if let Some(f) = row.first_byte_ns {
            times.write(&mut w, start.offset(i128::from(f)))?;
        }
        w.write_all(b"\t")?;
        times.write(&mut w, start.offset(i128::from(row.duration_ns)))?;
        writeln!(w, "\t{}", row.duration_ns)?;
        idx += 1;
    }
    // From here on, late rows are counted as dropped.
    shared.closed.store(true, Ordering::Relaxed);
    while let Ok(Msg::Row(_)) = rx.try_recv() {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
    writeln!(
        w,
        "# s3dlio op-log: client_id={client_id} clock_offset_ns={} rows={idx} dropped={} lossy={}",
        config.clock_offset_ns,
        shared.dropped.load(Ordering::Relaxed),
        config.lossy
    )?;
    w.into_inner().map_err(|e| e.into_error())?.finish()?;
    Ok(idx)
}

/// The log file, compressed or not.
enum Output {
    Plain(File),
    Zstd(zstd::stream::write::Encoder<'static, File>),
}

impl Output {
    /// Write the end of the zstd frame, flush, and sync nothing (the OS has the data).
    fn finish(self) -> io::Result<()> {
        match self {
            Self::Plain(mut f) => f.flush(),
            Self::Zstd(e) => e.finish()?.flush(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(f) => f.write(buf),
            Self::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(f) => f.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}

/// A field without tabs or line breaks, so rows stay rows.
fn clean(s: &str) -> Cow<'_, str> {
    if s.contains(['\t', '\n', '\r']) {
        Cow::Owned(s.replace(['\t', '\n', '\r'], " "))
    } else {
        Cow::Borrowed(s)
    }
}

// ---------------------------------------------------------------------------------------
// The process-wide op-log of the original s3dlio API: init_op_log / finalize_op_log.

static GLOBAL: Mutex<Option<OpLog>> = Mutex::new(None);
static GLOBAL_RECORDER: RwLock<Option<OpLogRecorder>> = RwLock::new(None);
static GLOBAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Start the process-wide op-log at `path` (settings from [`OpLogConfig::from_env`]).
/// Stores wrapped with [`GlobalOpLog`] write to it while it is on. Fails if one is on.
pub fn init_op_log(path: impl AsRef<Path>) -> io::Result<()> {
    init_op_log_with(path, OpLogConfig::from_env()?)
}

pub fn init_op_log_with(path: impl AsRef<Path>, config: OpLogConfig) -> io::Result<()> {
    let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(log) = &*g {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "an op-log is already being written to {}; finalize it first",
                log.path().display()
            ),
        ));
    }
    let log = OpLog::with_config(path, config)?;
    *GLOBAL_RECORDER.write().unwrap_or_else(|p| p.into_inner()) = Some(log.recorder());
    GLOBAL_ACTIVE.store(true, Ordering::Release);
    *g = Some(log);
    Ok(())
}

/// Finish the process-wide op-log, if one is on; a later [`init_op_log`] starts a new one.
pub fn finalize_op_log() -> io::Result<Option<OpLogStats>> {
    let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    GLOBAL_ACTIVE.store(false, Ordering::Release);
    *GLOBAL_RECORDER.write().unwrap_or_else(|p| p.into_inner()) = None;
    g.take().map(OpLog::finish).transpose()
}

pub fn is_op_log_active() -> bool {
    GLOBAL_ACTIVE.load(Ordering::Acquire)
}

/// Observer that writes to the process-wide op-log while one is on, and costs one atomic
/// load per operation while none is.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalOpLog;

impl Observer for GlobalOpLog {
    const DETAIL: bool = true;

    fn record(&self, rec: &OpRecord<'_>) {
        if !GLOBAL_ACTIVE.load(Ordering::Acquire) {
            return;
        }
        let r = GLOBAL_RECORDER.read().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = &*r {
            r.record(rec);
        }
    }
}
