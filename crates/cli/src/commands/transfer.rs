//! `get`, `download`, `upload` and `cp`: every byte is streamed from the source's reader
//! into the destination's writer, so memory stays bounded whatever the object sizes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use s3dlio_store_core::{
    ByteRange, CopyOptions, Error, ErrorKind, GetOptions, ListItem, ListOptions, ObjectMeta,
    ObjectStore, ObjectUri, PutOptions,
};
use s3dlio_store_fs::FsStore;
use tokio::io::AsyncWriteExt;

use super::{is_local_dir, run_batch, CliError, CliResult, Ctx};
use crate::args::{CpArgs, DownloadArgs, GetArgs, UploadArgs};
use crate::patterns::{as_dir, below_dir, expand, safe_relative, KeyGlob, LocalFile};
use crate::progress::Progress;

/// Copy one object (or a range of it) from one store to another, streaming; the writer is
/// aborted on any error so nothing partial is left. Within one store that can copy, the
/// copy is server-side. Returns the bytes copied.
pub async fn copy_object(
    src: &dyn ObjectStore,
    src_key: &str,
    dst: &dyn ObjectStore,
    dst_key: &str,
    range: Option<ByteRange>,
    progress: &Progress,
) -> Result<u64, Error> {
    let same_store = std::ptr::eq(
        src as *const dyn ObjectStore as *const u8,
        dst as *const dyn ObjectStore as *const u8,
    );
    if same_store && range.is_none() && src.capabilities().copy {
        let r = src.copy(src_key, dst_key, CopyOptions::default()).await?;
        progress.add_bytes(r.size);
        return Ok(r.size);
    }
    let got = src
        .get(
            src_key,
            GetOptions {
                range,
                if_match: None,
            },
        )
        .await?;
    let mut body = got.into_stream();
    let mut w = dst.writer(dst_key, PutOptions::default()).await?;
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                let n = chunk.len() as u64;
                if let Err(e) = w.write(chunk).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                progress.add_bytes(n);
            }
            Ok(None) => break,
            Err(e) => {
                let _ = w.abort().await;
                return Err(e);
            }
        }
    }
    Ok(w.complete().await?.size)
}

/// Objects under `prefix`: every key with `recursive`, else only those one level down.
pub(super) async fn list_objects(
    store: &dyn ObjectStore,
    prefix: &str,
    recursive: bool,
) -> Result<Vec<ObjectMeta>, Error> {
    let opts = if recursive {
        ListOptions::recursive()
    } else {
        ListOptions::delimited()
    };
    store
        .list(prefix, opts)
        .try_filter_map(|i| async move {
            Ok(match i {
                ListItem::Object(m) => Some(m),
                ListItem::Prefix(_) => None,
            })
        })
        .try_collect()
        .await
}

/// Whether SRC names a prefix rather than one object.
fn is_prefix(uri: &ObjectUri, recursive: bool) -> bool {
    recursive || uri.key.is_empty() || uri.key.ends_with('/')
}

/// SRC's key as a glob (see [`KeyGlob`]), unless it has no glob character or names an
/// existing object as it is (keys may hold `*`, `?`, `[` or `{` themselves).
pub(super) async fn source_glob(store: &dyn ObjectStore, key: &str) -> CliResult<Option<KeyGlob>> {
    let Some(glob) = KeyGlob::parse(key)? else {
        return Ok(None);
    };
    match store.head(key).await {
        Ok(_) => Ok(None),
        // Not an object (or not even a valid object key, such as one ending in '/').
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {
            Ok(Some(glob))
        }
        Err(e) => Err(e.into()),
    }
}

/// The objects `glob` matches, listed under its literal directory.
pub(super) async fn glob_objects(
    store: &dyn ObjectStore,
    glob: &KeyGlob,
) -> Result<Vec<ObjectMeta>, Error> {
    let mut objects = list_objects(store, &glob.dir, glob.recursive()).await?;
    objects.retain(|m| glob.matches(&m.key));
    Ok(objects)
}

/// What a source names: the objects under a prefix, or those a glob matches; `base` is
/// the key the names below it are taken from.
async fn many_objects(
    store: &dyn ObjectStore,
    uri: &ObjectUri,
    glob: Option<&KeyGlob>,
    recursive: bool,
) -> Result<(Vec<ObjectMeta>, String), Error> {
    Ok(match glob {
        Some(g) => (glob_objects(store, g).await?, g.dir.clone()),
        None => (
            list_objects(store, &uri.key, recursive).await?,
            uri.key.clone(),
        ),
    })
}

/// Zero-byte keys ending in `/` are "folder" markers some tools create, not files.
pub(super) fn is_dir_marker(m: &ObjectMeta) -> bool {
    m.key.ends_with('/') && m.size == 0
}

fn basename(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Stream one object (or range) to stdout.
async fn to_stdout(store: &dyn ObjectStore, key: &str, range: Option<ByteRange>) -> CliResult {
    let got = store
        .get(
            key,
            GetOptions {
                range,
                if_match: None,
            },
        )
        .await?;
    let total = got.len();
    let progress = Progress::bytes("read", Some(1), Some(total));
    let mut body = got.into_stream();
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = body.try_next().await? {
        if let Err(e) = stdout.write_all(&chunk).await {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                super::exit_quietly();
            }
            return Err(format!("writing to stdout: {e}").into());
        }
        progress.add_bytes(chunk.len() as u64);
    }
    stdout
        .flush()
        .await
        .map_err(|e| CliError(format!("writing to stdout: {e}")))?;
    progress.object_done();
    progress.finish();
    Ok(())
}

/// A download directory as a store rooted at it: the file store refuses keys that would
/// leave it (`..`, absolute paths, symlinks pointing outside).
fn dir_store(ctx: &Ctx, dir: &str) -> CliResult<Arc<dyn ObjectStore>> {
    let uri = ctx.local_location(dir)?;
    let path = uri
        .local_path()
        .ok_or_else(|| CliError(format!("{dir}: not a local directory")))?;
    std::fs::create_dir_all(&path)
        .map_err(|e| CliError(format!("creating directory {}: {e}", path.display())))?;
    Ok(ctx.observe(Arc::new(FsStore::new(path)?)))
}

/// Copy `objects` from `src` into `dst`, each named by `name(meta)`, `jobs` at a time.
pub(super) async fn copy_many(
    src: Arc<dyn ObjectStore>,
    dst: Option<Arc<dyn ObjectStore>>,
    objects: Vec<(ObjectMeta, Result<String, String>)>,
    jobs: u64,
    verb: &'static str,
) -> CliResult {
    let total: u64 = objects.iter().map(|(m, _)| m.size).sum();
    let progress = Progress::bytes(verb, Some(objects.len() as u64), Some(total));
    let p = &progress;
    run_batch(objects, jobs, p, "objects", |(meta, name)| {
        let (src, dst) = (Arc::clone(&src), dst.clone());
        async move {
            let uri = src.uri_of(&meta.key);
            let name = name.map_err(|e| (uri.clone(), CliError(e)))?;
            let r = match &dst {
                Some(d) => copy_object(&*src, &meta.key, &**d, &name, None, p).await,
                None => discard(&*src, &meta.key, p).await,
            };
            r.map_err(|e| (uri, e.into()))?;
            p.object_done();
            Ok(())
        }
    })
    .await
}

/// Read an object and drop the bytes (the read benchmark of `get` without a destination).
async fn discard(store: &dyn ObjectStore, key: &str, p: &Progress) -> Result<u64, Error> {
    let mut body = store.get(key, GetOptions::default()).await?.into_stream();
    let mut n = 0;
    while let Some(c) = body.try_next().await? {
        n += c.len() as u64;
        p.add_bytes(c.len() as u64);
    }
    Ok(n)
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> CliResult {
    let range = match (a.offset, a.length) {
        (None, None) => None,
        (off, len) => Some(ByteRange::from_offset_length(off.unwrap_or(0), len)?),
    };
    if let Some(list) = &a.keylist {
        if range.is_some() || a.recursive {
            return Err("--offset/--length and -r do not combine with --keylist".into());
        }
        // With --keylist the one positional is the destination.
        let dest = match (&a.uri, &a.dest) {
            (Some(_), Some(_)) => {
                return Err("with --keylist give at most one argument, the destination".into())
            }
            (d, None) | (None, d) => d.clone(),
        };
        return get_keylist(ctx, list, dest.as_deref(), a.jobs).await;
    }
    let Some(src) = a.uri.as_deref() else {
        return Err("give an object URI or --keylist FILE".into());
    };
    let uri = ctx.location(src)?;
    let store = ctx.store(&uri).await?;
    let glob = source_glob(&*store, &uri.key).await?;
    if glob.is_none() && !is_prefix(&uri, a.recursive) {
        return match a.dest.as_deref() {
            None | Some("-") => to_stdout(&*store, &uri.key, range).await,
            Some(d) => {
                let mut dest = ctx.local_location(d)?;
                if dest.key.ends_with('/') || is_local_dir(&dest) {
                    dest = dest.with_key(join(&dest.key, basename(&uri.key)));
                }
                let dst = ctx.store(&dest).await?;
                let p = Progress::bytes("downloaded", Some(1), None);
                copy_object(&*store, &uri.key, &*dst, &dest.key, range, &p).await?;
                p.object_done();
                p.finish();
                Ok(())
            }
        };
    }
    if range.is_some() {
        return Err(
            "--offset/--length read one object; drop -r, the trailing '/' or the glob".into(),
        );
    }
    let (objects, base) = many_objects(&*store, &uri, glob.as_ref(), a.recursive).await?;
    if glob.is_some() && objects.is_empty() {
        return Err(format!("{uri}: the glob matches no objects").into());
    }
    let objects: Vec<_> = objects
        .into_iter()
        .filter(|m| !is_dir_marker(m))
        .map(|m| {
            let name = safe_relative(below_dir(&base, &m.key)).map(str::to_owned);
            (m, name)
        })
        .collect();
    match a.dest.as_deref() {
        Some("-") => Err("several objects cannot go to stdout; give a directory".into()),
        None => copy_many(store, None, objects, a.jobs, "read").await,
        Some(d) => {
            let dst = dir_store(ctx, d)?;
            copy_many(store, Some(dst), objects, a.jobs, "downloaded").await
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}/{name}")
    }
}

async fn get_keylist(ctx: &Ctx, list: &Path, dest: Option<&str>, jobs: u64) -> CliResult {
    let text = std::fs::read_to_string(list)
        .map_err(|e| CliError(format!("reading keylist {}: {e}", list.display())))?;
    let uris: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if uris.is_empty() {
        return Err(format!("keylist {} holds no URIs", list.display()).into());
    }
    // Parse every line first: a typo on line 900 should fail before 899 downloads.
    let mut parsed = Vec::with_capacity(uris.len());
    for u in &uris {
        parsed.push(ctx.location(u)?);
    }
    let dst = match dest {
        Some("-") => return Err("several objects cannot go to stdout; give a directory".into()),
        Some(d) => Some(dir_store(ctx, d)?),
        None => None,
    };
    let progress = Progress::bytes(
        if dst.is_some() { "downloaded" } else { "read" },
        Some(parsed.len() as u64),
        None,
    );
    let p = &progress;
    run_batch(parsed, jobs, p, "objects", |uri| {
        let dst = dst.clone();
        async move {
            let name = uri.to_string();
            let fail = |e: CliError| (name.clone(), e);
            let src = ctx.store(&uri).await.map_err(fail)?;
            match &dst {
                // Keyed by the whole key, so objects from one prefix keep their tree.
                Some(d) => {
                    let rel = safe_relative(&uri.key).map_err(|e| fail(CliError(e)))?;
                    copy_object(&*src, &uri.key, &**d, rel, None, p)
                        .await
                        .map_err(|e| fail(e.into()))?;
                }
                None => {
                    discard(&*src, &uri.key, p)
                        .await
                        .map_err(|e| fail(e.into()))?;
                }
            }
            p.object_done();
            Ok(())
        }
    })
    .await
}

pub async fn download(ctx: &Ctx, a: DownloadArgs) -> CliResult {
    let uri = ctx.location(&a.src)?;
    let store = ctx.store(&uri).await?;
    let glob = source_glob(&*store, &uri.key).await?;
    let (objects, base) = if glob.is_some() || is_prefix(&uri, a.recursive) {
        many_objects(&*store, &uri, glob.as_ref(), a.recursive).await?
    } else {
        (vec![store.head(&uri.key).await?], uri.key.clone())
    };
    if objects.is_empty() {
        return Err(match glob {
            Some(_) => format!("{uri}: the glob matches no objects"),
            None => format!("nothing to download under {uri}"),
        }
        .into());
    }
    let objects: Vec<_> = objects
        .into_iter()
        .filter(|m| !is_dir_marker(m))
        .map(|m| {
            let name = safe_relative(below_dir(&base, &m.key)).map(str::to_owned);
            (m, name)
        })
        .collect();
    let dst = dir_store(ctx, &a.dest_dir)?;
    copy_many(store, Some(dst), objects, a.jobs, "downloaded").await
}

pub async fn upload(ctx: &Ctx, a: UploadArgs) -> CliResult {
    let (dest_arg, sources) = a
        .paths
        .split_last()
        .ok_or_else(|| CliError("give at least one source and a destination".into()))?;
    let dest = ctx.location(dest_arg)?;
    let mut files: Vec<LocalFile> = Vec::new();
    let mut plain_file = false;
    for s in sources {
        let found = expand(s, &ctx.cwd)?;
        if found.is_empty() {
            return Err(format!("{s}: matches no files").into());
        }
        plain_file = sources.len() == 1
            && matches!(
                crate::patterns::classify(s, &ctx.cwd),
                Ok(crate::patterns::SourceKind::File)
            );
        files.extend(found);
    }
    // DEST is a prefix unless one plain file goes to a name that is not a directory.
    let exact =
        plain_file && !dest.key.is_empty() && !dest.key.ends_with('/') && !is_local_dir(&dest);
    let prefix = if exact || dest.key.is_empty() || dest.key.ends_with('/') {
        dest.key.clone()
    } else {
        format!("{}/", dest.key)
    };
    let mut seen: HashMap<String, &Path> = HashMap::new();
    let mut jobs = Vec::with_capacity(files.len());
    for f in &files {
        let key = if exact {
            prefix.clone()
        } else {
            format!("{prefix}{}", f.name)
        };
        match seen.get(&key) {
            Some(p) if *p == f.path.as_path() => continue,
            Some(p) => {
                return Err(format!(
                    "{} and {} would both be written to {}",
                    p.display(),
                    f.path.display(),
                    dest.with_key(key)
                )
                .into())
            }
            None => {
                seen.insert(key.clone(), &f.path);
            }
        }
        jobs.push((f.clone(), key));
    }
    if a.create_bucket {
        super::buckets::ensure_bucket(ctx, &dest).await?;
    }
    let dst = ctx.store(&dest).await?;
    let local = ctx.store(&ctx.local_location("/")?).await?;
    let total: u64 = jobs.iter().map(|(f, _)| f.size).sum();
    let progress = Progress::bytes("uploaded", Some(jobs.len() as u64), Some(total));
    let p = &progress;
    run_batch(jobs, a.jobs, p, "files", |(f, key)| {
        let (dst, local) = (Arc::clone(&dst), Arc::clone(&local));
        async move {
            let path = f.path.to_string_lossy();
            let src_key = path.trim_start_matches('/');
            copy_object(&*local, src_key, &*dst, &key, None, p)
                .await
                .map_err(|e| (f.path.display().to_string(), e.into()))?;
            p.object_done();
            Ok(())
        }
    })
    .await
}

pub async fn cp(ctx: &Ctx, a: CpArgs) -> CliResult {
    let src = ctx.location(&a.src)?;
    let dest = ctx.location(&a.dest)?;
    let src_store = ctx.store(&src).await?;
    let dst_store = ctx.store(&dest).await?;
    let into_dir = dest.key.is_empty() || dest.key.ends_with('/') || is_local_dir(&dest);
    let glob = source_glob(&*src_store, &src.key).await?;
    if !a.recursive && glob.is_none() {
        if src.key.is_empty() || src.key.ends_with('/') {
            return Err(format!("{src} is a prefix; use cp -r to copy everything under it").into());
        }
        let key = if into_dir {
            join(&dest.key, basename(&src.key))
        } else {
            dest.key.clone()
        };
        let size = src_store.head(&src.key).await?.size;
        let p = Progress::bytes("copied", Some(1), Some(size));
        copy_object(&*src_store, &src.key, &*dst_store, &key, None, &p).await?;
        p.object_done();
        p.finish();
        return Ok(());
    }
    let prefix = as_dir(&dest.key);
    let (objects, base) = many_objects(&*src_store, &src, glob.as_ref(), true).await?;
    if objects.is_empty() {
        return Err(match glob {
            Some(_) => format!("{src}: the glob matches no objects"),
            None => format!("nothing to copy under {src}"),
        }
        .into());
    }
    let local_dest = dest.scheme.is_local();
    let objects: Vec<_> = objects
        .into_iter()
        .filter(|m| !is_dir_marker(m))
        .map(|m| {
            let rel = below_dir(&base, &m.key);
            let name = if local_dest {
                safe_relative(rel).map(|r| format!("{prefix}{r}"))
            } else {
                Ok(format!("{prefix}{rel}"))
            };
            (m, name)
        })
        .collect();
    copy_many(src_store, Some(dst_store), objects, a.jobs, "copied").await
}
