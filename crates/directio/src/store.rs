//! [`DirectStore`]: construction, opening files with `O_DIRECT` (or the opt-in fallback),
//! and the [`ObjectStore`] operations.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use rustix::fs::OFlags;
use s3dlio_store_core::{
    Capabilities, CopyOptions, Error, ErrorKind, GetOptions, GetResult, ListOptions, ListPage,
    ObjectMeta, ObjectStore, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result,
};
use s3dlio_store_fs::local::{self, IoPool, Root, TempFile};

use crate::buf::AlignedPool;
use crate::io::Mode;
use crate::options::{DirectOptions, Fallback};

/// An object store over the directory tree under one root, like `file://` (same keys,
/// listings, atomic temp+rename writes, containment), with every read and write done with
/// `O_DIRECT` in large aligned I/Os, several in flight, so the page cache is neither used
/// nor polluted. Writes are durable when they complete (file and directory synced).
/// Cheap to clone (clones share their state).
#[derive(Debug, Clone)]
pub struct DirectStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: Root,
    pub(crate) base_uri: String,
    pub(crate) opts: DirectOptions,
    pub(crate) pool: Arc<AlignedPool>,
    pub(crate) io: Arc<IoPool>,
    /// The alignment of each device seen so far.
    aligns: Mutex<HashMap<u64, usize>>,
    /// Devices whose refusal of O_DIRECT has been logged.
    warned: Mutex<HashSet<u64>>,
}

impl Inner {
    pub(crate) fn uri(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri)
    }

    /// Bytes per I/O for files of alignment `align`.
    pub(crate) fn io_size(&self, align: usize) -> usize {
        self.opts.io_size.next_multiple_of(align)
    }

    fn mode_of(&self, file: &File, md: &Metadata) -> Mode {
        let dev = md.dev();
        let mut aligns = self.aligns.lock().unwrap_or_else(|p| p.into_inner());
        let align = *aligns
            .entry(dev)
            .or_insert_with(|| crate::align::discover(file, dev));
        Mode::Direct { align }
    }

    /// `O_DIRECT` was refused for `path` (the same open without it worked): an error by
    /// default, or (opted in) a warning, once per file system, and buffered I/O.
    fn refused(&self, path: &Path, dev: u64) -> Result<Mode> {
        let fs = crate::align::filesystem_of(path).unwrap_or_else(|| "unknown".to_owned());
        if self.opts.fallback == Fallback::Refuse {
            return Err(Error::not_supported(format!(
                "the file system of {} ({fs}) refuses O_DIRECT; use file:// there, or opt in \
                 to buffered I/O with S3DLIO_DIRECT_FALLBACK=buffered \
                 (DirectOptions::fallback = Fallback::Buffered)",
                path.display()
            )));
        }
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dev);
        if first {
            tracing::warn!(
                path = %path.display(),
                filesystem = %fs,
                "O_DIRECT refused by the file system; falling back to buffered I/O with \
                 POSIX_FADV_DONTNEED, as S3DLIO_DIRECT_FALLBACK=buffered asks"
            );
        }
        Ok(Mode::Buffered)
    }

    /// Open `key` for reading with `O_DIRECT`, or as the fallback allows.
    pub(crate) fn open_read(&self, key: &str) -> Result<(File, Metadata, Mode)> {
        match self.root.open_object_with(key, OFlags::DIRECT) {
            Ok((file, md)) => {
                let mode = self.mode_of(&file, &md);
                Ok((file, md, mode))
            }
            Err(e) if e.kind() == ErrorKind::InvalidInput => {
                // EINVAL: find out whether O_DIRECT was the reason.
                let Ok((file, md)) = self.root.open_object(key, local::Access::Read) else {
                    return Err(e);
                };
                let mode = self.refused(&self.root.path_of(key), md.dev())?;
                Ok((file, md, mode))
            }
            Err(e) => Err(e),
        }
    }

    /// A temporary file for a write of `key`, opened with `O_DIRECT` (or as the fallback
    /// allows), and how to write it.
    pub(crate) fn create_temp(&self, key: &str) -> Result<(TempFile, Mode)> {
        match self.root.create_temp_with(key, true, OFlags::DIRECT) {
            Ok(tmp) => {
                let md = tmp
                    .file()
                    .metadata()
                    .map_err(|e| Error::from_io(e, "fstat a temporary file"))?;
                let mode = self.mode_of(tmp.file(), &md);
                Ok((tmp, mode))
            }
            Err(e) if e.kind() == ErrorKind::InvalidInput => {
                let Ok(tmp) = self.root.create_temp(key, true) else {
                    return Err(e);
                };
                let dev = tmp.file().metadata().map(|m| m.dev()).unwrap_or(0);
                match self.refused(&self.root.path_of(key), dev) {
                    Ok(mode) => Ok((tmp, mode)),
                    Err(refused) => {
                        let _ = tmp.discard();
                        Err(refused)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl DirectStore {
    /// A store rooted at `root`, an absolute path to an existing directory, with default
    /// options.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::with_options(root, DirectOptions::default())
    }

    /// A store rooted at `root` with `options`.
    pub fn with_options(root: impl Into<PathBuf>, options: DirectOptions) -> Result<Self> {
        let given = root.into();
        let ctx = |e: Error| e.context(Operation::Open, format!("direct://{}", given.display()));
        options.validate().map_err(ctx)?;
        let root = Root::new(&given).map_err(ctx)?;
        let base_uri = root.base_uri("direct");
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                base_uri,
                pool: AlignedPool::new(options.buffer_pool_bytes),
                io: Arc::new(IoPool::named(options.io_threads, "s3dlio-direct-io")),
                opts: options,
                aligns: Mutex::new(HashMap::new()),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The root directory, as given (normalised).
    pub fn root(&self) -> &Path {
        self.inner.root.path()
    }

    /// The options this store was made with.
    pub fn options(&self) -> &DirectOptions {
        &self.inner.opts
    }

    /// The file-system path of `key` (which is not validated).
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.inner.root.path_of(key)
    }
}

#[async_trait]
impl ObjectStore for DirectStore {
    fn base_uri(&self) -> &str {
        &self.inner.base_uri
    }

    fn capabilities(&self) -> Capabilities {
        local::CAPABILITIES
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        crate::read::get(&self.inner, key, opts).await
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let uri = self.inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Put, uri.clone());
        local::check_put_options("direct", &opts).map_err(ctx)?;
        local::check_key(key).map_err(ctx)?;
        crate::write::put(&self.inner, key, data, opts.mode == PutMode::Create)
            .await
            .map_err(ctx)
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(
            crate::write::DirectWriter::open(&self.inner, key, opts).await?,
        ))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let uri = self.inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Head, uri.clone());
        local::check_key(key).map_err(ctx)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        self.inner
            .io
            .run(move || local::head(&inner.root, &key))
            .await
            .map_err(ctx)
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let ctx = |e: Error| e.context(Operation::List, self.inner.uri(prefix));
        local::check_prefix(prefix).map_err(ctx)?;
        let (inner, prefix_owned, opts) =
            (Arc::clone(&self.inner), prefix.to_owned(), opts.clone());
        self.inner
            .io
            .run(move || local::list_page(&inner.root, &prefix_owned, &opts, token.as_deref()))
            .await
            .map_err(ctx)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let uri = self.inner.uri(key);
        local::check_key(key).map_err(|e| e.context(Operation::Delete, uri.clone()))?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        self.inner
            .io
            .run(move || local::delete(&inner.root, &key))
            .await
            .map_err(|e| e.context(Operation::Delete, uri))
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        Ok(stream::iter(keys)
            .map(|k| async move { self.delete(&k).await })
            .buffered(self.inner.opts.io_threads)
            .collect()
            .await)
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let src_uri = self.inner.uri(from);
        local::check_key(from).map_err(|e| e.context(Operation::Copy, src_uri.clone()))?;
        local::check_key(to).map_err(|e| e.context(Operation::Copy, self.inner.uri(to)))?;
        crate::write::copy(&self.inner, from, to, opts.create_only)
            .await
            .map_err(|e| e.with_operation(Operation::Copy))
    }
}
