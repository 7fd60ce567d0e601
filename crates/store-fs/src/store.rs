//! [`FsStore`]: construction, and the [`ObjectStore`] operations.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use s3dlio_store_core::{
    Capabilities, CopyOptions, Error, ErrorKind, GetOptions, GetResult, ListOptions, ListPage,
    ObjectMeta, ObjectStore, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result,
};

use crate::io::IoPool;
use crate::keys::{check_key, check_prefix, split_key};
use crate::options::FsOptions;
use crate::sys::{object_meta, read_err, Access, Root};
use crate::writer::FsWriter;
use s3dlio_store_core::BufferPool;

/// An object store over the directory tree under one root: atomic writes through
/// temporary files and `rename`, positional reads, listings in S3's key order, and no access
/// through symlinks that lead out of the root. See the crate's README for the guarantees.
/// Cheap to clone (clones share their state).
#[derive(Debug, Clone)]
pub struct FsStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: Root,
    pub(crate) base_uri: String,
    pub(crate) opts: FsOptions,
    pub(crate) pool: Arc<BufferPool>,
    pub(crate) io: Arc<IoPool>,
}

impl Inner {
    pub(crate) fn uri(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri)
    }
}

impl FsStore {
    /// A store rooted at `root`, an absolute path to an existing directory, with default
    /// options.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::with_options(root, FsOptions::default())
    }

    /// A store rooted at `root` with `options`.
    pub fn with_options(root: impl Into<PathBuf>, options: FsOptions) -> Result<Self> {
        let given = root.into();
        let ctx = |e: Error| e.context(Operation::Open, format!("file://{}", given.display()));
        options.validate().map_err(ctx)?;
        let root = Root::new(&given).map_err(ctx)?;
        let base_uri = root.base_uri("file");
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                base_uri,
                pool: BufferPool::new(options.buffer_pool_bytes),
                io: Arc::new(IoPool::new(options.io_threads)),
                opts: options,
            }),
        })
    }

    /// The root directory, as given (normalised).
    pub fn root(&self) -> &Path {
        &self.inner.root.path
    }

    /// The options this store was made with.
    pub fn options(&self) -> &FsOptions {
        &self.inner.opts
    }

    /// The file-system path of `key` (which is not validated).
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.inner.root.path_of(key)
    }
}

/// What a store over local files offers (`file://`, and `direct://` built on it).
pub const CAPABILITIES: Capabilities = Capabilities {
    range_get: true,
    get_if_match: true,
    put_create_only: true,
    put_if_match: false,
    content_type: false,
    user_metadata: false,
    list_delimiter: true,
    copy: true,
    etag: true,
    last_modified: true,
    object_and_prefix_same_name: false,
};

/// Refuse, before touching anything, what a store over local files cannot honour;
/// `scheme` (`file`, `direct`) names it in the message.
pub fn check_put_options(scheme: &str, opts: &PutOptions) -> Result<()> {
    if let PutMode::IfMatch(_) = opts.mode {
        return Err(Error::not_supported(format!(
            "{scheme}:// cannot replace an object conditionally on its ETag (PutMode::IfMatch)"
        )));
    }
    if opts.content_type.is_some() {
        return Err(Error::not_supported(format!(
            "{scheme}:// does not store content types"
        )));
    }
    if !opts.metadata.is_empty() {
        return Err(Error::not_supported(format!(
            "{scheme}:// does not store user metadata"
        )));
    }
    Ok(())
}

/// The metadata of the object at `key`, from an `fstat` of the file itself.
pub fn head(root: &Root, key: &str) -> Result<ObjectMeta> {
    let (_, md) = root.open_object(key, Access::Meta)?;
    Ok(object_meta(key.to_owned(), &md))
}

#[async_trait]
impl ObjectStore for FsStore {
    fn base_uri(&self) -> &str {
        &self.inner.base_uri
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        crate::read::get(&self.inner, key, opts).await
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let uri = self.inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Put, uri.clone());
        check_put_options("file", &opts).map_err(ctx)?;
        check_key(key).map_err(ctx)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        let create_only = opts.mode == PutMode::Create;
        self.inner
            .io
            .run(move || {
                let fsync = inner.opts.fsync;
                let tmp = inner.root.create_temp(&key, fsync)?;
                io::Write::write_all(&mut &*tmp.file, &data).map_err(|e| {
                    Error::from_io(e, format!("write {}", inner.root.path_of(&key).display()))
                })?;
                let md = tmp.publish(create_only, fsync)?;
                Ok(PutResult {
                    etag: Some(crate::sys::etag(&md)),
                    size: data.len() as u64,
                })
            })
            .await
            .map_err(ctx)
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(FsWriter::open(&self.inner, key, opts).await?))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let uri = self.inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Head, uri.clone());
        check_key(key).map_err(ctx)?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        self.inner
            .io
            .run(move || head(&inner.root, &key))
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
        check_prefix(prefix).map_err(ctx)?;
        let (inner, prefix_owned, opts) =
            (Arc::clone(&self.inner), prefix.to_owned(), opts.clone());
        self.inner
            .io
            .run(move || {
                crate::list::list_page(&inner.root, &prefix_owned, &opts, token.as_deref())
            })
            .await
            .map_err(ctx)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let uri = self.inner.uri(key);
        check_key(key).map_err(|e| e.context(Operation::Delete, uri.clone()))?;
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        self.inner
            .io
            .run(move || delete_one(&inner.root, &key))
            .await
            .map_err(|e| e.context(Operation::Delete, uri))
    }

    /// Deletes in batches on the I/O threads: one job per batch rather than per key.
    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        const BATCH: usize = 64;
        let count = keys.len();
        let mut rest = keys.into_iter();
        let batches: Vec<Vec<String>> = std::iter::from_fn(|| {
            let batch: Vec<String> = rest.by_ref().take(BATCH).collect();
            (!batch.is_empty()).then_some(batch)
        })
        .collect();
        let results: Vec<Result<Vec<Result<()>>>> = stream::iter(batches)
            .map(|batch| {
                let inner = Arc::clone(&self.inner);
                async move {
                    let io = Arc::clone(&inner.io);
                    io.run(move || {
                        Ok(batch
                            .iter()
                            .map(|key| {
                                check_key(key)
                                    .and_then(|()| delete_one(&inner.root, key))
                                    .map_err(|e| e.context(Operation::Delete, inner.uri(key)))
                            })
                            .collect())
                    })
                    .await
                }
            })
            .buffered(4)
            .collect()
            .await;
        let mut out = Vec::with_capacity(count);
        for r in results {
            out.extend(r.map_err(|e| e.with_operation(Operation::DeleteMany))?);
        }
        Ok(out)
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let src_uri = self.inner.uri(from);
        check_key(from).map_err(|e| e.context(Operation::Copy, src_uri.clone()))?;
        check_key(to).map_err(|e| e.context(Operation::Copy, self.inner.uri(to)))?;
        let (inner, from, to) = (Arc::clone(&self.inner), from.to_owned(), to.to_owned());
        let dst_uri = self.inner.uri(&to);
        self.inner
            .io
            .run(move || {
                let (src, src_md) = inner
                    .root
                    .open_object(&from, Access::Read)
                    .map_err(|e| e.with_uri(src_uri))?;
                let ctx = |e: Error| e.with_uri(dst_uri.clone());
                let fsync = inner.opts.fsync;
                let tmp = inner.root.create_temp(&to, fsync).map_err(ctx)?;
                // `io::copy` between files uses copy_file_range (reflinks where the file system
                // can) or sendfile, so the bytes need not pass through user space.
                let copied = io::copy(&mut &src, &mut &*tmp.file).map_err(|e| {
                    ctx(Error::from_io(
                        e,
                        format!(
                            "copy {} to a temporary file",
                            inner.root.path_of(&from).display()
                        ),
                    ))
                })?;
                if copied != src_md.len() {
                    return Err(ctx(Error::new(
                        ErrorKind::Interrupted,
                        format!(
                            "source changed during the copy: copied {copied} of {} bytes",
                            src_md.len()
                        ),
                    )));
                }
                let md = tmp.publish(opts.create_only, fsync).map_err(ctx)?;
                Ok(PutResult {
                    etag: Some(crate::sys::etag(&md)),
                    size: copied,
                })
            })
            .await
            .map_err(|e| e.with_operation(Operation::Copy))
    }
}

/// Remove one object. A missing key (or a missing parent) succeeds, as in S3; a directory
/// is refused. The file is unlinked relative to its parent directory, opened and checked
/// to be inside the root first, so a symlinked parent cannot redirect the delete.
/// Directories are left in place: they may be mount points or carry permissions, and
/// listings do not show directories that hold no objects.
pub fn delete_one(root: &Root, key: &str) -> Result<()> {
    let (parent, name) = split_key(key);
    let dir = match root.open_parent(parent, false, false) {
        Ok(d) => d,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::ISDIR) => Err(Error::invalid_input(format!(
            "{} is a directory, not an object",
            root.path_of(key).display()
        ))),
        Err(e) => Err(read_err(
            e.into(),
            format!("unlink {}", root.path_of(key).display()),
        )),
    }
}
