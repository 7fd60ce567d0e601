//! Listings in the byte order of the full key, from a directory walk.
//!
//! Each directory's entries are ordered by name, a directory's name counting as `name/`:
//! every key below directory `d` starts with `d/`, so `a-b` (a file, `-` < `/`) comes before
//! `a/x`, and `a/x` before `a0`. A depth-first walk in that order yields keys sorted.
//!
//! The walk is resumable: subdirectories that sort entirely before the resume point are
//! never read, and it stops once the page is full (plus one entry, to know whether more
//! remain). Entries are kept in a heap so that only the ones a page consumes are ordered.
//!
//! Symlinks: a symlinked file is listed if its canonical target is inside the store root;
//! a symlinked directory is walked if its canonical target is inside the root and is not
//! an ancestor of (or the same as) a directory being walked, which rules out cycles.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use s3dlio_store_core::store::{effective_start, ResumePoint, DEFAULT_PAGE_SIZE, MAX_KEY_LEN};
use s3dlio_store_core::{paginate, Error, ListItem, ListOptions, ListPage, Result};

use crate::keys::{is_temp_name, split_prefix};
use crate::sys::{object_meta, Root};

/// One page of the keys under `prefix`.
pub fn list_page(
    root: &Root,
    prefix: &str,
    opts: &ListOptions,
    token: Option<&str>,
) -> Result<ListPage> {
    list_page_counting(root, prefix, opts, token).map(|(page, _)| page)
}

/// [`list_page`], and the number of directories it read.
fn list_page_counting(
    root: &Root,
    prefix: &str,
    opts: &ListOptions,
    token: Option<&str>,
) -> Result<(ListPage, usize)> {
    let limit = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
    let mut walker = Walker {
        root,
        start: effective_start(opts, token),
        want: limit.saturating_add(1),
        items: Vec::new(),
        stack: Vec::new(),
        dirs_read: 0,
    };
    walker.run(prefix, opts.recursive)?;
    Ok((
        paginate(walker.items, prefix, opts, token),
        walker.dirs_read,
    ))
}

/// How the keys under a directory relate to the resume point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// All of them come before it: skip the directory.
    Before,
    /// It lies among them: walk, checking each key.
    Straddles,
    /// All of them come after it: walk without checks.
    After,
}

/// Where the keys starting with `dir` (ending in `/`) lie relative to `start`.
fn span(start: Option<&ResumePoint<'_>>, dir: &str) -> Span {
    let a = match start {
        None => return Span::After,
        Some(ResumePoint::After(a)) => *a,
        Some(ResumePoint::AtOrAfter(a)) => a.as_str(),
    };
    if a.starts_with(dir) {
        Span::Straddles
    } else if dir > a {
        Span::After
    } else {
        Span::Before
    }
}

enum Kind {
    /// A regular file, or a symlink to one.
    File(Stat),
    /// A directory, or a symlink to one (with the target's canonical path).
    Dir(Option<PathBuf>),
}

/// Where a listed file's metadata comes from.
enum Stat {
    /// A symlink's target, already `stat`ed to classify it.
    Target(Metadata),
    /// A regular file, `stat`ed only if listed. (By path: keeping the `DirEntry` would keep
    /// every ancestor directory open for the whole walk.)
    Later,
}

struct Entry {
    /// The name, plus `/` for a directory: the order of entries.
    order: String,
    kind: Kind,
}

impl Entry {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Dir(_) => &self.order[..self.order.len() - 1],
            Kind::File(_) => &self.order,
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order.as_bytes().cmp(other.order.as_bytes())
    }
}

struct Walker<'a> {
    root: &'a Root,
    start: Option<ResumePoint<'a>>,
    /// Entries to collect: a page plus one.
    want: usize,
    items: Vec<ListItem>,
    /// Canonical paths of the directories being walked, outermost first.
    stack: Vec<PathBuf>,
    dirs_read: usize,
}

impl Walker<'_> {
    fn run(&mut self, prefix: &str, recursive: bool) -> Result<()> {
        let (dir_key, filter) = split_prefix(prefix);
        let checked = match span(self.start.as_ref(), dir_key) {
            Span::Before if !dir_key.is_empty() => return Ok(()),
            Span::After => false,
            _ => true,
        };
        let root = self.root;
        let dir = root.path_of(dir_key.trim_end_matches('/'));
        let canon = match fs::canonicalize(&dir) {
            Ok(c) => c,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(Error::from_io(e, format!("resolve {}", dir.display()))),
        };
        // A prefix reached through a symlink out of the root has nothing under it here.
        if !root.is_inside(&canon) {
            return Ok(());
        }
        self.stack.push(canon);
        let res = self.walk(&dir, dir_key, filter, recursive, checked);
        self.stack.pop();
        match res {
            Ok(_) | Err(Walk::Full) => Ok(()),
            Err(Walk::Failed(e)) => Err(e),
        }
    }

    /// Walk `dir`, whose keys start with `key_prefix`, keeping names that start with
    /// `filter`. `checked`: keys must still be compared with the resume point.
    fn walk(
        &mut self,
        dir: &Path,
        key_prefix: &str,
        filter: &str,
        recursive: bool,
        checked: bool,
    ) -> Result<(), Walk> {
        let Some(mut heap) = self.read_dir(dir, key_prefix, filter, checked)? else {
            return Ok(());
        };
        while let Some(Reverse(entry)) = heap.pop() {
            let key = format!("{key_prefix}{}", entry.order);
            let name = entry.name();
            let path = dir.join(name);
            match entry.kind {
                Kind::File(stat) => {
                    if checked && !self.admits(&key) {
                        continue;
                    }
                    let md = match stat {
                        Stat::Target(md) => md,
                        Stat::Later => match fs::symlink_metadata(&path) {
                            Ok(md) if md.is_file() => md,
                            Ok(_) => continue,
                            Err(e) if gone(&e) => continue,
                            Err(e) => return Err(list_err(e, &path)),
                        },
                    };
                    self.push(ListItem::Object(object_meta(key, &md)))?;
                }
                Kind::Dir(ref target) => {
                    let span = if checked {
                        span(self.start.as_ref(), &key)
                    } else {
                        Span::After
                    };
                    if span == Span::Before {
                        continue;
                    }
                    let canon = target.clone().unwrap_or_else(|| self.top().join(name));
                    self.stack.push(canon);
                    let res = if recursive {
                        self.walk(&path, &key, "", true, span == Span::Straddles)
                    } else if span == Span::Straddles {
                        // The resume point lies inside: report the prefix only if a key after
                        // it exists, by finding the first one (paginate folds it).
                        let want = std::mem::replace(&mut self.want, self.items.len() + 1);
                        let res = self.walk(&path, &key, "", true, true);
                        self.want = want;
                        match res {
                            Ok(()) | Err(Walk::Full) => self.check_full(),
                            Err(e) => Err(e),
                        }
                    } else {
                        match self.has_objects(&path, key.len()) {
                            Ok(true) => self.push(ListItem::Prefix(key)),
                            Ok(false) => Ok(()),
                            Err(e) => Err(Walk::Failed(e)),
                        }
                    };
                    self.stack.pop();
                    res?;
                }
            }
        }
        Ok(())
    }

    /// Whether `dir` holds at least one listable object, at any depth (S3 has no empty
    /// directories, so a delimited listing must not report one). Stops at the first.
    fn has_objects(&mut self, dir: &Path, key_len: usize) -> Result<bool> {
        self.dirs_read += 1;
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if gone(&e) => return Ok(false),
            Err(e) => return Err(list_error(e, dir)),
        };
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(list_error(e, dir)),
            };
            let Some(name) = listable_name(&entry) else {
                continue;
            };
            if key_len + name.len() > MAX_KEY_LEN {
                continue;
            }
            match self.classify(&entry)? {
                Some(Kind::File(_)) => return Ok(true),
                Some(Kind::Dir(target)) => subdirs.push((name, target)),
                None => {}
            }
        }
        for (name, target) in subdirs {
            if key_len + name.len() + 1 >= MAX_KEY_LEN {
                continue;
            }
            let canon = target.unwrap_or_else(|| self.top().join(&name));
            self.stack.push(canon);
            let found = self.has_objects(&dir.join(&name), key_len + name.len() + 1);
            self.stack.pop();
            if found? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The entries of `dir` that may hold keys past the resume point, as a min-heap.
    fn read_dir(
        &mut self,
        dir: &Path,
        key_prefix: &str,
        filter: &str,
        checked: bool,
    ) -> Result<Option<BinaryHeap<Reverse<Entry>>>, Walk> {
        self.dirs_read += 1;
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(list_err(e, dir)),
        };
        let mut out = Vec::new();
        let mut probe = String::with_capacity(key_prefix.len() + 64);
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(list_err(e, dir)),
            };
            let Some(name) = listable_name(&entry) else {
                continue;
            };
            if !name.starts_with(filter) {
                continue;
            }
            // Keys past MAX_KEY_LEN cannot be read through the API; don't list them.
            if key_prefix.len() + name.len() > MAX_KEY_LEN {
                continue;
            }
            if checked {
                // Both the name and everything under `name/` sort before the resume
                // point: skip without a stat.
                probe.clear();
                probe.push_str(key_prefix);
                probe.push_str(&name);
                probe.push('/');
                if span(self.start.as_ref(), &probe) == Span::Before {
                    continue;
                }
            }
            let Some(kind) = self.classify(&entry)? else {
                continue;
            };
            if matches!(kind, Kind::Dir(_)) && key_prefix.len() + name.len() + 1 >= MAX_KEY_LEN {
                continue;
            }
            let order = match kind {
                Kind::Dir(_) => name + "/",
                Kind::File(_) => name,
            };
            out.push(Reverse(Entry { order, kind }));
        }
        Ok(Some(BinaryHeap::from(out)))
    }

    /// File, directory, or neither (sockets, FIFOs, devices, dangling or escaping symlinks,
    /// symlinks into a directory being walked).
    fn classify(&self, entry: &fs::DirEntry) -> Result<Option<Kind>> {
        let ft = match entry.file_type() {
            Ok(t) => t,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(list_error(e, &entry.path())),
        };
        if ft.is_file() {
            return Ok(Some(Kind::File(Stat::Later)));
        }
        if ft.is_dir() {
            return Ok(Some(Kind::Dir(None)));
        }
        if !ft.is_symlink() {
            return Ok(None);
        }
        let path = entry.path();
        // Dangling links and link loops are not objects.
        let Ok(md) = fs::metadata(&path) else {
            return Ok(None);
        };
        let root = self.root;
        if md.is_file() {
            if root.contained {
                match fs::canonicalize(&path) {
                    Ok(c) if root.is_inside(&c) => {}
                    _ => return Ok(None),
                }
            }
            return Ok(Some(Kind::File(Stat::Target(md))));
        }
        if md.is_dir() {
            let Ok(canon) = fs::canonicalize(&path) else {
                return Ok(None);
            };
            if !root.is_inside(&canon)
                || self.stack.iter().any(|walking| walking.starts_with(&canon))
            {
                tracing::debug!(path = %path.display(), target = %canon.display(), "symlink not followed");
                return Ok(None);
            }
            return Ok(Some(Kind::Dir(Some(canon))));
        }
        Ok(None)
    }

    fn admits(&self, key: &str) -> bool {
        self.start.as_ref().is_none_or(|s| s.admits(key))
    }

    fn top(&self) -> &Path {
        self.stack.last().map_or(Path::new("/"), PathBuf::as_path)
    }

    fn push(&mut self, item: ListItem) -> Result<(), Walk> {
        self.items.push(item);
        self.check_full()
    }

    fn check_full(&self) -> Result<(), Walk> {
        if self.items.len() >= self.want {
            Err(Walk::Full)
        } else {
            Ok(())
        }
    }
}

/// Why a walk stopped early.
enum Walk {
    Full,
    Failed(Error),
}

impl From<Error> for Walk {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// The entry's name, unless it cannot be a key (not UTF-8) or is an in-progress write.
fn listable_name(entry: &fs::DirEntry) -> Option<String> {
    let name = entry.file_name().into_string().ok()?;
    (!is_temp_name(&name)).then_some(name)
}

/// Removed, or replaced by a file, while we were looking: there is nothing to list.
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn list_error(e: io::Error, path: &Path) -> Error {
    Error::from_io(e, format!("read directory {}", path.display()))
}

fn list_err(e: io::Error, path: &Path) -> Walk {
    Walk::Failed(list_error(e, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        let after = |a| Some(ResumePoint::After(a));
        assert_eq!(span(None, "a/"), Span::After);
        assert_eq!(span(after("a/x").as_ref(), "a/"), Span::Straddles);
        assert_eq!(span(after("a/").as_ref(), "a/"), Span::Straddles);
        assert_eq!(span(after("a").as_ref(), "a/"), Span::After);
        assert_eq!(span(after("a-b").as_ref(), "a/"), Span::After);
        assert_eq!(span(after("a0").as_ref(), "a/"), Span::Before);
        assert_eq!(span(after("b/c").as_ref(), "a/"), Span::Before);
        let at = Some(ResumePoint::AtOrAfter("a0".to_owned()));
        assert_eq!(span(at.as_ref(), "a/"), Span::Before);
        assert_eq!(span(at.as_ref(), "a0/"), Span::After);
        let at = Some(ResumePoint::AtOrAfter("a0/x".to_owned()));
        assert_eq!(span(at.as_ref(), "a0/"), Span::Straddles);
        assert_eq!(span(at.as_ref(), "a1/"), Span::After);
    }

    /// Pages that resume past a subtree never read it, and a walk stops once a page (plus
    /// one entry) is full.
    #[test]
    fn resumed_walks_skip_earlier_subtrees_and_stop_early() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a/1", "a/2", "a/sub/x", "b/1", "c", "d/e/f"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let store = crate::FsStore::new(dir.path()).unwrap();
        let run = |recursive: bool, size: usize, start_after: Option<&str>, token: Option<&str>| {
            let opts = ListOptions {
                recursive,
                page_size: Some(size),
                start_after: start_after.map(str::to_owned),
            };
            let (page, reads) = list_page_counting(&store.inner.root, "", &opts, token).unwrap();
            let names: Vec<String> = page.items.iter().map(|i| i.name().to_owned()).collect();
            (names, page.next, reads)
        };
        // Everything: root, a, a/sub, b, d, d/e.
        let (names, next, reads) = run(true, 100, None, None);
        assert_eq!(names, ["a/1", "a/2", "a/sub/x", "b/1", "c", "d/e/f"]);
        assert_eq!((next, reads), (None, 6));
        // Past `b`: only root and b are read; a/ sorts before, d/ is beyond the page.
        let (names, next, reads) = run(true, 1, Some("b"), None);
        assert_eq!(
            (names, next.as_deref(), reads),
            (vec!["b/1".to_owned()], Some("b/1"), 2)
        );
        // Resuming inside a/: a/sub is read, b/ and everything later is not.
        let (names, _, reads) = run(true, 1, None, Some("a/2"));
        assert_eq!((names, reads), (vec!["a/sub/x".to_owned()], 4)); // root, a, a/sub, b (the +1)
                                                                     // Delimited, resuming after the prefix a/: a/ is not read; b/ is checked for objects.
        let (names, next, reads) = run(false, 1, None, Some("a/"));
        assert_eq!(
            (names, next.as_deref(), reads),
            (vec!["b/".to_owned()], Some("b/"), 2)
        );
    }

    #[test]
    fn entries_order_directories_as_name_slash() {
        let e = |order: &str, dir: bool| Entry {
            order: order.to_owned(),
            kind: if dir {
                Kind::Dir(None)
            } else {
                Kind::File(Stat::Later)
            },
        };
        let mut v = [
            e("a/", true),
            e("a0", false),
            e("a-b", false),
            e("a.b", false),
            e("B", false),
        ];
        v.sort();
        let names: Vec<&str> = v.iter().map(|e| e.order.as_str()).collect();
        assert_eq!(names, ["B", "a-b", "a.b", "a/", "a0"]);
        assert_eq!(v[3].name(), "a");
    }
}
