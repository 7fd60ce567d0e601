//! File-system primitives: opening objects and directories without leaving the root,
//! temporary files and their atomic publication, positional reads, ETags. Everything here
//! blocks; callers run it on the store's I/O threads (`io.rs`).

use std::fs::{File, Metadata};
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use s3dlio_store_core::pool::append_with;
use s3dlio_store_core::{Error, ErrorKind, ObjectMeta, Result};

use crate::keys::{split_key, temp_name};
use crate::options::FsOptions;
use std::path::Component;

/// Flags to open an object only to `fstat` it: `O_PATH` needs no read permission and
/// cannot block on a FIFO.
#[cfg(any(target_os = "linux", target_os = "android"))]
const META_FLAGS: OFlags = OFlags::PATH.union(OFlags::CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const META_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// Flags to open an object for reading. `O_NONBLOCK` keeps a FIFO planted in the tree from
/// hanging the open; it has no effect on regular files.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// What an object is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Meta,
}

/// The store's root directory, and the rules for staying inside it.
#[derive(Debug)]
pub struct Root {
    /// As given (absolute, normalised); keys are joined to it.
    pub(crate) path: PathBuf,
    /// Its canonical form, which every object's real path must start with.
    pub(crate) canon: PathBuf,
    /// False when the root is `/`: then nothing can lie outside it and checks are skipped.
    pub(crate) contained: bool,
}

impl Root {
    /// The root at `given`: an absolute path (normalised: no `.`, `..`, repeated or
    /// trailing slashes) to an existing directory, and its canonical form.
    pub fn new(given: &Path) -> Result<Self> {
        let path = normalise_root(given)?;
        let md = std::fs::metadata(&path)
            .map_err(|e| Error::from_io(e, format!("store root {}", path.display())))?;
        if !md.is_dir() {
            return Err(Error::invalid_input(format!(
                "store root {} is not a directory",
                path.display()
            )));
        }
        let canon = std::fs::canonicalize(&path)
            .map_err(|e| Error::from_io(e, format!("resolve store root {}", path.display())))?;
        if path.to_str().is_none() {
            return Err(Error::invalid_input(format!(
                "store root {} is not valid UTF-8",
                path.display()
            )));
        }
        let contained = canon != Path::new("/");
        Ok(Self {
            path,
            canon,
            contained,
        })
    }

    /// The URI of the root under `scheme` (`file`, `direct`), ending in `/`.
    pub fn base_uri(&self, scheme: &str) -> String {
        match self.path.to_str() {
            Some("/") | None => format!("{scheme}:///"),
            Some(text) => format!("{scheme}://{text}/"),
        }
    }

    /// The root directory, as given (normalised).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file-system path of `key` (which is not validated).
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.path.join(key)
    }

    /// Open the object at `key`, `fstat` it, and check that it is a regular file inside
    /// the root. The metadata describes exactly the file opened.
    pub fn open_object(&self, key: &str, access: Access) -> Result<(File, Metadata)> {
        let flags = match access {
            Access::Read => READ_FLAGS,
            Access::Meta => META_FLAGS,
        };
        self.open_object_flags(key, flags)
    }

    /// [`open_object`](Self::open_object) for reading, with `extra` open flags (such as
    /// `O_DIRECT`) added.
    pub fn open_object_with(&self, key: &str, extra: OFlags) -> Result<(File, Metadata)> {
        self.open_object_flags(key, READ_FLAGS | extra)
    }

    fn open_object_flags(&self, key: &str, flags: OFlags) -> Result<(File, Metadata)> {
        let path = self.path_of(key);
        let fd = rustix::fs::open(&path, flags, Mode::empty()).map_err(|e| {
            tracing::debug!(path = %path.display(), error = %e, "open failed");
            read_err(e.into(), format!("open {}", path.display()))
        })?;
        let file = File::from(fd);
        let md = file
            .metadata()
            .map_err(|e| read_err(e, format!("fstat {}", path.display())))?;
        self.check_inside(file.as_fd(), &path)?;
        if md.is_dir() {
            return Err(Error::not_found(format!(
                "{} is a directory, not an object",
                path.display()
            )));
        }
        if !md.is_file() {
            return Err(Error::not_found(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Ok((file, md))
    }

    /// Fail with `PermissionDenied` unless `fd` (opened from `path`) lies inside the root.
    pub fn check_inside(&self, fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
        if !self.contained {
            return Ok(());
        }
        let real = real_path(fd, path)?;
        if self.is_inside(&real) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} resolves to {}, outside the store root {}",
                path.display(),
                real.display(),
                self.path.display()
            ),
        ))
    }

    pub fn is_inside(&self, canonical: &Path) -> bool {
        !self.contained || canonical.starts_with(&self.canon)
    }

    /// Open the directory `rel` (relative to the root, `""` for the root itself) for
    /// creating entries in it. With `create`, missing directories are made one level at a
    /// time, each relative to a directory already checked to be inside the root, so a
    /// symlink can never lead `mkdir` outside it. With `fsync`, each new entry is synced.
    pub fn open_parent(&self, rel: &str, create: bool, fsync: bool) -> Result<OwnedFd> {
        let path = if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        };
        match rustix::fs::open(&path, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => {
                if !rel.is_empty() {
                    self.check_inside(fd.as_fd(), &path)?;
                }
                return Ok(fd);
            }
            Err(Errno::NOENT) if create && !rel.is_empty() => {}
            Err(e) => return Err(dir_err(e, &path)),
        }
        let mut cur = rustix::fs::open(&self.path, DIR_FLAGS, Mode::empty())
            .map_err(|e| dir_err(e, &self.path))?;
        let mut cur_path = self.path.clone();
        for name in rel.split('/') {
            match rustix::fs::mkdirat(&cur, name, Mode::from_bits_truncate(0o777)) {
                Ok(()) if fsync => rustix::fs::fsync(&cur).map_err(|e| {
                    Error::from_io(e.into(), format!("fsync directory {}", cur_path.display()))
                })?,
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    let msg = format!("create directory {}", cur_path.join(name).display());
                    return Err(Error::from_io(e.into(), msg));
                }
            }
            cur_path.push(name);
            let next = rustix::fs::openat(&cur, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| dir_err(e, &cur_path))?;
            self.check_inside(next.as_fd(), &cur_path)?;
            cur = next;
        }
        Ok(cur)
    }

    /// A new, empty temporary file in the directory of `key` (created as needed), named so
    /// that listings skip it.
    pub fn create_temp(&self, key: &str, fsync: bool) -> Result<TempFile> {
        self.create_temp_with(key, fsync, OFlags::empty())
    }

    /// [`create_temp`](Self::create_temp) with `extra` open flags (such as `O_DIRECT`)
    /// added. A refused flag fails the open with the file system's error (`EINVAL` for
    /// `O_DIRECT` on tmpfs).
    pub fn create_temp_with(&self, key: &str, fsync: bool, extra: OFlags) -> Result<TempFile> {
        let (parent, name) = split_key(key);
        let dir = self.open_parent(parent, true, fsync)?;
        let dir_path = self.path_of(parent);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | extra;
        // A name can only be taken by a file left over from a crashed process that had
        // our pid; try a few more.
        for _ in 0..8 {
            let tmp = temp_name(name);
            match rustix::fs::openat(&dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o666)) {
                Ok(fd) => {
                    return Ok(TempFile {
                        file: Arc::new(File::from(fd)),
                        dir,
                        dir_path,
                        name: tmp,
                        target: name.to_owned(),
                        armed: true,
                    })
                }
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    if e == Errno::INVAL && !extra.is_empty() {
                        // Refused flags (O_DIRECT on ramfs) fail the open after the file
                        // was created; O_EXCL means the name was ours to remove.
                        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
                    }
                    let msg = format!("create temporary file in {}", dir_path.display());
                    return Err(Error::from_io(e.into(), msg));
                }
            }
        }
        Err(Error::other(format!(
            "could not find a free temporary file name in {}",
            dir_path.display()
        )))
    }
}

/// An absolute path without `.`, `..`, repeated or trailing slashes.
fn normalise_root(root: &Path) -> Result<PathBuf> {
    if !root.is_absolute() {
        return Err(Error::invalid_input(format!(
            "store root {} must be an absolute path",
            root.display()
        )));
    }
    let mut out = PathBuf::from("/");
    for c in root.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid_input(format!(
                    "store root {} must not contain '..'",
                    root.display()
                )))
            }
        }
    }
    Ok(out)
}

/// The path the kernel holds for `fd`: `/proc/self/fd` where there is one, else the
/// canonical form of `path`, accepted only if it still names the file we opened.
fn real_path(fd: BorrowedFd<'_>, path: &Path) -> Result<PathBuf> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
            if p.is_absolute() {
                return Ok(p);
            }
        }
    }
    canonical_path_of(fd, path)
}

/// Portable fallback of [`real_path`].
pub fn canonical_path_of(fd: BorrowedFd<'_>, path: &Path) -> Result<PathBuf> {
    let canon = std::fs::canonicalize(path)
        .map_err(|e| read_err(e, format!("resolve {}", path.display())))?;
    let opened = rustix::fs::fstat(fd)
        .map_err(|e| Error::from_io(e.into(), format!("fstat {}", path.display())))?;
    let now =
        std::fs::metadata(&canon).map_err(|e| read_err(e, format!("stat {}", canon.display())))?;
    #[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 everywhere
    if now.dev() == opened.st_dev as u64 && now.ino() == opened.st_ino as u64 {
        Ok(canon)
    } else {
        Err(Error::new(
            ErrorKind::Interrupted,
            format!("{} changed while it was being opened", path.display()),
        ))
    }
}

/// An I/O error of a read path: a file where a directory was expected means the key does
/// not exist, as in an object store.
pub fn read_err(e: io::Error, msg: String) -> Error {
    if e.kind() == io::ErrorKind::NotADirectory {
        Error::new(ErrorKind::NotFound, msg).with_source(e)
    } else {
        Error::from_io(e, msg)
    }
}

fn dir_err(e: Errno, path: &Path) -> Error {
    if e == Errno::NOTDIR {
        return Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: a parent of the key is an object, not a directory",
                path.display()
            ),
        )
        .with_source(io::Error::from(e));
    }
    tracing::debug!(path = %path.display(), error = %e, "open directory failed");
    Error::from_io(e.into(), format!("open directory {}", path.display()))
}

/// A temporary file being written; removed on drop unless published.
#[derive(Debug)]
pub struct TempFile {
    pub(crate) file: Arc<File>,
    dir: OwnedFd,
    dir_path: PathBuf,
    name: String,
    target: String,
    armed: bool,
}

impl TempFile {
    /// The open temporary file (write-only).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Sync (if asked), `fstat`, and publish under the target name: `rename` replaces an
    /// existing object atomically; a create-only publish fails atomically if one exists.
    /// Returns the metadata of the published file.
    pub fn publish(mut self, create_only: bool, fsync: bool) -> Result<Metadata> {
        let target = self.dir_path.join(&self.target);
        if fsync {
            self.file
                .sync_all()
                .map_err(|e| Error::from_io(e, format!("fsync {}", target.display())))?;
        }
        let md = self.file.metadata().map_err(|e| {
            Error::from_io(e, format!("fstat temporary file of {}", target.display()))
        })?;
        let res = if create_only {
            self.link_noreplace()
        } else {
            rustix::fs::renameat(
                &self.dir,
                self.name.as_str(),
                &self.dir,
                self.target.as_str(),
            )
            .map(|()| self.armed = false)
        };
        res.map_err(|e| {
            tracing::debug!(path = %target.display(), error = %e, "publish failed");
            publish_err(e, &target)
        })?;
        if fsync {
            rustix::fs::fsync(&self.dir).map_err(|e| {
                Error::from_io(
                    e.into(),
                    format!("fsync directory {}", self.dir_path.display()),
                )
            })?;
        }
        Ok(md)
    }

    /// Remove the temporary file now, reporting failure (drop would swallow it).
    pub fn discard(mut self) -> Result<()> {
        self.armed = false;
        match rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::from_io(
                e.into(),
                format!(
                    "remove temporary file {}",
                    self.dir_path.join(&self.name).display()
                ),
            )),
        }
    }

    /// Publish only if the target does not exist. `renameat2(RENAME_NOREPLACE)` where the
    /// file system has it, else `link` (which fails with EEXIST atomically) and let drop
    /// remove the temporary name.
    fn link_noreplace(&mut self) -> rustix::io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::RenameFlags;
            let (tmp, target) = (self.name.as_str(), self.target.as_str());
            match rustix::fs::renameat_with(
                &self.dir,
                tmp,
                &self.dir,
                target,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.armed = false;
                    return Ok(());
                }
                Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
                Err(e) => return Err(e),
            }
        }
        rustix::fs::linkat(
            &self.dir,
            self.name.as_str(),
            &self.dir,
            self.target.as_str(),
            AtFlags::empty(),
        )
    }
}

fn publish_err(e: Errno, target: &Path) -> Error {
    let (kind, why) = match e {
        Errno::EXIST => (ErrorKind::AlreadyExists, "the key exists (create-only write)"),
        Errno::ISDIR => (ErrorKind::InvalidInput, "the key is a directory"),
        Errno::PERM | Errno::NOTSUP => (
            ErrorKind::NotSupported,
            "create-only writes need RENAME_NOREPLACE or hard links, and this file system has neither",
        ),
        _ => return Error::from_io(e.into(), format!("rename into {}", target.display())),
    };
    Error::new(kind, format!("{}: {why}", target.display())).with_source(io::Error::from(e))
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the directory may be gone, or the process may lack permission;
            // nothing more can be done here.
            let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// The ETag of a file: inode, size and modification time (ns), so a replacement (a new
/// inode) or an in-place change (size or mtime) gives a new tag.
pub fn etag(md: &Metadata) -> String {
    let mtime_ns = md
        .mtime()
        .wrapping_mul(1_000_000_000)
        .wrapping_add(md.mtime_nsec());
    format!("\"{:x}-{:x}-{:x}\"", md.ino(), md.size(), mtime_ns as u64)
}

pub fn object_meta(key: String, md: &Metadata) -> ObjectMeta {
    let mut meta = ObjectMeta::new(key, md.size());
    meta.last_modified = md.modified().ok();
    meta.etag = Some(etag(md));
    meta
}

/// Read exactly `len` bytes at `offset` into a buffer allocated once at that size (and
/// never zero-filled). A file that ends early is `UnexpectedEof`, never a short buffer.
pub fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let pos = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ended at byte {pos}, {} bytes short (truncated while reading?)",
                        len - buf.len()
                    ),
                ))
            }
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // `with_capacity` may hand out more than asked; never return bytes past the range.
    buf.truncate(len);
    Ok(buf)
}

/// Fill `buf` from `offset` with positional reads; a file that ends first is an
/// `UnexpectedEof` error naming where it ended.
pub fn read_exact_into(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let pos = offset + done as u64;
        match rustix::io::pread(file, &mut buf[done..], pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ended at byte {pos}, {} bytes short (truncated while reading?)",
                        buf.len() - done
                    ),
                ))
            }
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Append `len` bytes of `file` from `offset` to `buf`, read straight into its spare
/// capacity; on error `buf` may hold part of them.
pub fn read_exact_append(
    file: &File,
    offset: u64,
    buf: &mut bytes::BytesMut,
    len: usize,
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        let pos = offset + done as u64;
        let read = append_with(buf, len - done, |room| {
            rustix::io::pread(file, room, pos).map(|(init, _)| init)
        });
        match read {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ended at byte {pos}, {} bytes short (truncated while reading?)",
                        len - done
                    ),
                ))
            }
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Tell the kernel how `range` of a `size`-byte file will be read (see
/// [`FsOptions::large_file_threshold`]). The advice applies to this open file only, so it
/// cannot hurt other readers; `DONTNEED` is never given, as it would evict pages they share.
pub fn advise(file: &File, range: &Range<u64>, size: u64, opts: &FsOptions) {
    use rustix::fs::Advice;
    if !opts.fadvise || range.is_empty() {
        return;
    }
    let len = range.end - range.start;
    let advice = if len >= opts.large_file_threshold {
        Advice::Sequential
    } else if len < size && size >= opts.large_file_threshold {
        Advice::Random
    } else {
        return;
    };
    // A hint only: file systems that refuse it read correctly without it.
    let _ = rustix::fs::fadvise(file, range.start, std::num::NonZeroU64::new(len), advice);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_fallback_checks_the_opened_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        std::os::unix::fs::symlink(&a, dir.path().join("link")).unwrap();
        let file = File::open(dir.path().join("link")).unwrap();
        let real = canonical_path_of(file.as_fd(), &dir.path().join("link")).unwrap();
        assert_eq!(real, std::fs::canonicalize(&a).unwrap());
        // Replaced after opening: the path no longer names the opened file.
        std::fs::remove_file(&a).unwrap();
        std::fs::write(&a, b"y").unwrap();
        let e = canonical_path_of(file.as_fd(), &dir.path().join("link")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    }

    #[test]
    fn short_files_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(read_exact_at(&f, 2, 5).unwrap(), b"23456");
        assert_eq!(read_exact_at(&f, 0, 0).unwrap(), b"");
        let e = read_exact_at(&f, 8, 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
