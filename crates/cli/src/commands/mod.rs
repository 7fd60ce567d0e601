//! What each subcommand does.

mod buckets;
mod list;
mod oplog;
mod put;
mod rm;
mod sync;
mod tfrecord;
mod transfer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};
use s3dlio_metrics::{
    finalize_op_log, init_op_log_with, GlobalOpLog, Metrics, ObservedStore, OpLogConfig, Tracing,
};
use s3dlio_store_core::{Error, ObjectStore, ObjectUri, Registry, RetryPolicy};
use s3dlio_store_s3::{S3Options, ServerSideEncryption};
use tracing::level_filters::LevelFilter;

use crate::args::{Cli, Command, S3Flags};
use crate::patterns::absolute;

pub use buckets::{create_bucket, delete_bucket};
pub use put::{put, DEFAULT_TEMPLATE, MAX_CHUNK_SIZE};
pub use transfer::{copy_object, download, upload};

/// A failure of the command, printed as one line `s3-cli: <this>`.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        Self(e.to_string())
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// The layers every store a command opens is wrapped in: metrics (`--metrics`), the
/// op-log (`--op-log`, kept as the process-wide log so that every way out of the process
/// can finish it), and tracing spans (seen at debug level).
pub type Observers = (Option<Arc<Metrics>>, Option<GlobalOpLog>, Tracing);

/// A store as opened, and the same store inside the observing layers.
type Wrapped = (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>);

/// What every command shares: the registry of backends and the output mode.
#[derive(Debug)]
pub struct Ctx {
    pub registry: Registry,
    pub s3: S3Flags,
    pub json: bool,
    pub cwd: PathBuf,
    /// `None`: stores are used as opened, with no layer.
    pub observers: Option<Observers>,
    /// Each store wrapped once (inner, wrapped), so one store stays one store: `cp` within
    /// a bucket compares stores to pick a server-side copy.
    wrapped: Mutex<Vec<Wrapped>>,
}

/// `S3Options` from the environment (S3DLIO_* tuning) with the command-line flags on top.
pub fn s3_options(flags: &S3Flags) -> CliResult<S3Options> {
    let mut o = S3Options::default().with_env_overrides()?;
    if let Some(v) = &flags.endpoint_url {
        // One endpoint, or several of one cluster separated by commas (the flag wins over
        // S3DLIO_ENDPOINTS).
        let list: Vec<String> = v
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        (o.endpoint_url, o.endpoints) = match list.len() {
            1 => (list.into_iter().next(), Vec::new()),
            _ => (None, list),
        };
    }
    if let Some(v) = &flags.region {
        o.region = Some(v.clone());
    }
    if let Some(v) = &flags.profile {
        o.profile = Some(v.clone());
    }
    if let Some(v) = &flags.ca_bundle {
        o.ca_bundle = Some(v.clone());
    }
    if flags.no_sign_request {
        o.no_sign_request = true;
    }
    if flags.request_payer.is_some() {
        o.requester_pays = true;
    }
    match (&flags.sse, &flags.sse_kms_key_id) {
        (Some(kind), key) => {
            // A key or bucket key from the environment stays unless the flag names a key.
            let (env_key, bucket_key) = match &o.server_side_encryption {
                Some(ServerSideEncryption::Kms { key_id, bucket_key }) => {
                    (key_id.clone(), *bucket_key)
                }
                _ => (None, None),
            };
            let key = key.clone().or(env_key);
            o.server_side_encryption = Some(
                ServerSideEncryption::parse(kind, key, bucket_key)
                    .map_err(|e| CliError(format!("--sse: {}", e.message())))?,
            );
        }
        (None, Some(key)) => match &mut o.server_side_encryption {
            Some(ServerSideEncryption::Kms { key_id, .. }) => *key_id = Some(key.clone()),
            _ => return Err(CliError("--sse-kms-key-id needs --sse aws:kms".into())),
        },
        (None, None) => {}
    }
    if let Some(c) = &flags.storage_class {
        o.storage_class = Some(c.clone());
    }
    o.validate()?;
    Ok(o)
}

impl Ctx {
    pub fn new(flags: S3Flags, json: bool, observers: Option<Observers>) -> CliResult<Self> {
        let mut registry = Registry::new();
        // Every store gets the retry layer (S3DLIO_RETRY=off: none), set before the
        // backends register so they leave whole operations to it.
        registry.set_retry_policy(RetryPolicy::from_env()?);
        s3dlio_store_fs::register(&mut registry);
        s3dlio_directio::register(&mut registry);
        if flags.any() {
            s3dlio_store_s3::register_with(&mut registry, s3_options(&flags)?);
        } else {
            s3dlio_store_s3::register(&mut registry);
        }
        s3dlio_store_azure::register(&mut registry);
        let cwd = std::env::current_dir()
            .map_err(|e| CliError(format!("cannot read the current directory: {e}")))?;
        Ok(Self {
            registry,
            s3: flags,
            json,
            cwd,
            observers,
            wrapped: Mutex::default(),
        })
    }

    /// `store` inside the observing layers, if any; the same store gets the same wrapper.
    pub fn observe(&self, store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        let Some(obs) = &self.observers else {
            return store;
        };
        let mut wrapped = self.wrapped.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, w)) = wrapped.iter().find(|(s, _)| Arc::ptr_eq(s, &store)) {
            return Arc::clone(w);
        }
        let w: Arc<dyn ObjectStore> =
            Arc::new(ObservedStore::from_arc(Arc::clone(&store), obs.clone()));
        wrapped.push((store, Arc::clone(&w)));
        w
    }

    /// A URI, or a local path written as one (`/abs`, `./rel`, `../rel`, `.`, `..`).
    pub fn location(&self, s: &str) -> CliResult<ObjectUri> {
        if is_local_path(s) {
            return Ok(self.local(s));
        }
        Ok(self.registry.parse(s)?)
    }

    /// A local path (absolute or relative to the current directory) or a `file://` URI.
    pub fn local_location(&self, s: &str) -> CliResult<ObjectUri> {
        if s.contains("://") {
            let u = self.registry.parse(s)?;
            if !u.scheme.is_local() {
                return Err(format!("{s}: expected a local path or file:// URI").into());
            }
            return Ok(u);
        }
        Ok(self.local(s))
    }

    fn local(&self, s: &str) -> ObjectUri {
        let mut key = absolute(s, &self.cwd)
            .to_string_lossy()
            .trim_start_matches('/')
            .to_owned();
        if (s.ends_with('/') || s == "." || s == ".." || s.ends_with("/.")) && !key.is_empty() {
            key.push('/');
        }
        ObjectUri {
            scheme: s3dlio_store_core::Scheme::File,
            account: None,
            container: String::new(),
            key,
        }
    }

    pub async fn store(&self, uri: &ObjectUri) -> CliResult<Arc<dyn ObjectStore>> {
        Ok(self.observe(self.registry.store_for(uri).await?))
    }
}

fn is_local_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s == "." || s == ".."
}

/// Whether a local URI names an existing directory.
fn is_local_dir(uri: &ObjectUri) -> bool {
    uri.local_path().is_some_and(|p| Path::new(&p).is_dir())
}

/// Run `op` on every item, `jobs` at a time; failures are printed as they happen and
/// counted. Returns an error naming how many of how many failed.
pub async fn run_batch<T, F, Fut>(
    items: impl IntoIterator<Item = T>,
    jobs: u64,
    progress: &crate::progress::Progress,
    what: &str,
    op: F,
) -> CliResult
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), (String, CliError)>>,
{
    let mut total = 0u64;
    let mut failed = 0u64;
    let mut results = stream::iter(items)
        .map(|item| {
            total += 1;
            op(item)
        })
        .buffer_unordered(usize::try_from(jobs).unwrap_or(usize::MAX).max(1));
    while let Some(r) = results.next().await {
        if let Err((name, e)) = r {
            failed += 1;
            progress.println(&format!("s3-cli: failed: {name}: {e}"));
        }
    }
    drop(results);
    progress.finish();
    if failed > 0 {
        return Err(format!("{failed} of {total} {what} failed (listed above)").into());
    }
    Ok(())
}

/// Run the parsed command line: open the op-log and metrics it asks for, run the command,
/// then finish the log and print the metrics (also when the command failed).
pub async fn run(cli: Cli) -> CliResult {
    if let Command::Oplog(c) = &cli.command {
        return oplog::run(c, cli.json);
    }
    if let Some(path) = &cli.op_log {
        OpLogConfig::from_env()
            .and_then(|c| init_op_log_with(path, c))
            .map_err(|e| CliError(format!("--op-log: {e}")))?;
    }
    let metrics = cli.metrics.then(|| Arc::new(Metrics::new()));
    let spans = LevelFilter::current() >= LevelFilter::DEBUG;
    let op_log = cli.op_log.is_some().then_some(GlobalOpLog);
    let observers = (metrics.is_some() || op_log.is_some() || spans)
        .then(|| (metrics.clone(), op_log, Tracing));
    let json = cli.json;
    let mut result = match Ctx::new(cli.s3, json, observers) {
        Ok(ctx) => dispatch(&ctx, cli.command).await,
        Err(e) => Err(e),
    };
    match finalize_op_log() {
        Ok(Some(s)) => {
            tracing::info!(
                "op-log: {} operations written to {}",
                s.rows,
                s.path.display()
            );
            if s.dropped > 0 {
                eprintln!("s3-cli: op-log: {} operations were not logged", s.dropped);
            }
        }
        Ok(None) => {}
        Err(e) => {
            let e = CliError(format!("--op-log: {e}"));
            match &result {
                Ok(()) => result = Err(e),
                Err(_) => eprintln!("s3-cli: {e}"),
            }
        }
    }
    if let Some(m) = metrics {
        let snap = m.snapshot();
        if json {
            eprintln!("{}", snap.to_json());
        } else {
            eprint!("{}", snap.to_table());
        }
    }
    result
}

async fn dispatch(ctx: &Ctx, command: Command) -> CliResult {
    match command {
        Command::Ls(a) => list::ls(ctx, a).await,
        Command::Stat(a) => list::stat(ctx, a).await,
        Command::Get(a) => transfer::get(ctx, a).await,
        Command::Put(a) => put::put(ctx, a).await,
        Command::Upload(a) => transfer::upload(ctx, a).await,
        Command::Download(a) => transfer::download(ctx, a).await,
        Command::Cp(a) => transfer::cp(ctx, a).await,
        Command::Rm(a) => rm::rm(ctx, a).await,
        Command::Sync(a) => sync::sync(ctx, a).await,
        Command::ListBuckets(a) => buckets::list_buckets(ctx, a).await,
        Command::CreateBucket(a) => buckets::create_bucket(ctx, a).await,
        Command::DeleteBucket(a) => buckets::delete_bucket(ctx, a).await,
        Command::Oplog(c) => oplog::run(&c, ctx.json),
        Command::Tfrecord(c) => tfrecord::run(ctx, c).await,
    }
}

/// End the process with success at once (stdout was closed: `| head`), finishing the
/// op-log first so that it stays readable.
pub fn exit_quietly() -> ! {
    let _ = finalize_op_log();
    std::process::exit(0)
}

/// Write a line to stdout; a closed pipe (`| head`) ends the command quietly.
pub fn out(line: &str) -> CliResult {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit_quietly(),
        Err(e) => Err(format!("writing to stdout: {e}").into()),
    }
}
