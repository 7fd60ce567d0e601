//! Which local files an `upload` source names, which keys a remote glob or `-p REGEX`
//! keeps, and where a key may be written under a download directory.
//!
//! Upload sources, in this order:
//! 1. an existing **file**: that file, named by its file name;
//! 2. an existing **directory**: every file under it (symlinked directories are not
//!    followed), named by its path relative to the directory's parent (`data` -> `data/a/b`),
//!    or relative to the directory itself when written with a trailing slash (`data/` ->
//!    `a/b`), as rsync does;
//! 3. a **regex**, when the source has any of `\ ^ $ + ( ) |`: the part before the last `/`
//!    ahead of the first regex metacharacter is a literal directory, the rest a regex that
//!    must match the *whole* name (`/logs/.*\.log$` takes `/logs/a.log`, never
//!    `/logs/xa.logz`). Without a `/` in the regex part only the directory's own files are
//!    candidates; with one (`/logs/20.*/.*\.log`), paths relative to the directory are;
//! 4. a **glob**, when the source has any of `* ? [ {`: matched against whole paths under its
//!    literal leading directories; `*` and `?` do not cross `/`, `**` does. Names are relative
//!    to those leading directories (`/data/**/*.log` -> `x/y.log`).

use std::path::{Component, Path, PathBuf};

use regex::Regex;

/// A local file to upload and the name (key suffix) it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub path: PathBuf,
    /// `/`-separated name relative to the source's base.
    pub name: String,
    pub size: u64,
}

/// How an upload source is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir { keep_name: bool },
    Regex { dir: PathBuf, regex: String },
    Glob { base: PathBuf, pattern: String },
}

const REGEX_ONLY: &[char] = &['\\', '^', '$', '+', '(', ')', '|'];
const GLOB_CHARS: &[char] = &['*', '?', '[', '{'];
const REGEX_META: &[char] = &[
    '\\', '^', '$', '+', '(', ')', '|', '*', '?', '[', ']', '{', '}',
];

/// A local path made absolute against `cwd` and normalised lexically (`.` and `..` removed,
/// repeated `/` folded); a trailing `/` is kept, since it means "the contents".
pub fn absolute(arg: &str, cwd: &Path) -> PathBuf {
    let joined = if arg.starts_with('/') {
        PathBuf::from(arg)
    } else {
        cwd.join(arg)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn abs_string(arg: &str, cwd: &Path) -> String {
    let mut s = absolute(arg, cwd).to_string_lossy().into_owned();
    let trailing = arg.ends_with('/') || arg.ends_with("/.") || arg == ".";
    if trailing && !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// Decide what kind of source `arg` is (see the module documentation).
pub fn classify(arg: &str, cwd: &Path) -> Result<SourceKind, String> {
    let abs = abs_string(arg, cwd);
    let path = Path::new(&abs);
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_dir() {
            return Ok(SourceKind::Dir {
                keep_name: !abs.ends_with('/'),
            });
        }
        return Ok(SourceKind::File);
    }
    if arg.contains(REGEX_ONLY) {
        let first = abs.find(REGEX_META).unwrap_or(abs.len());
        let cut = abs[..first].rfind('/').unwrap_or(0);
        let dir = PathBuf::from(if cut == 0 { "/" } else { &abs[..cut] });
        let regex = abs[cut + 1..].to_owned();
        return Ok(SourceKind::Regex { dir, regex });
    }
    if arg.contains(GLOB_CHARS) {
        let first = abs.find(GLOB_CHARS).unwrap_or(abs.len());
        let cut = abs[..first].rfind('/').unwrap_or(0);
        let base = PathBuf::from(if cut == 0 { "/" } else { &abs[..cut] });
        return Ok(SourceKind::Glob { base, pattern: abs });
    }
    Err(format!("{arg}: no such file or directory"))
}

fn utf8_name(rel: &Path) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s.to_owned()),
            None => return Err(format!("{}: file name is not UTF-8", rel.display())),
        }
    }
    Ok(parts.join("/"))
}

/// Files under `dir`, recursively up to `max_depth` levels (1: the directory's own files),
/// sorted by path. Symlinked files are included; symlinked directories are not followed.
fn walk(dir: &Path, max_depth: usize, out: &mut Vec<(PathBuf, u64)>) -> Result<(), String> {
    let mut stack = vec![(dir.to_path_buf(), 1usize)];
    while let Some((d, depth)) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("reading directory {}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading directory {}: {e}", d.display()))?;
            let path = entry.path();
            let ft = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if ft.is_dir() {
                if depth < max_depth {
                    stack.push((path, depth + 1));
                }
            } else if let Ok(m) = std::fs::metadata(&path) {
                // Regular files and symlinks to regular files; a symlink to a directory
                // or a dangling one is skipped.
                if m.is_file() {
                    out.push((path, m.len()));
                }
            }
        }
    }
    out.sort();
    Ok(())
}

/// The files one upload source names.
pub fn expand(arg: &str, cwd: &Path) -> Result<Vec<LocalFile>, String> {
    let kind = classify(arg, cwd)?;
    let abs = absolute(arg, cwd);
    let mut found = Vec::new();
    let mut files = Vec::new();
    match kind {
        SourceKind::File => {
            let size = std::fs::metadata(&abs)
                .map_err(|e| format!("{arg}: {e}"))?
                .len();
            let name = abs
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{arg}: file name is not UTF-8"))?
                .to_owned();
            files.push(LocalFile {
                path: abs,
                name,
                size,
            });
        }
        SourceKind::Dir { keep_name } => {
            walk(&abs, usize::MAX, &mut found)?;
            let base = match (keep_name, abs.parent()) {
                (true, Some(p)) => p.to_path_buf(),
                _ => abs.clone(),
            };
            for (path, size) in found {
                let rel = path.strip_prefix(&base).unwrap_or(&path);
                files.push(LocalFile {
                    name: utf8_name(rel)?,
                    path,
                    size,
                });
            }
        }
        SourceKind::Regex { dir, regex } => {
            let re = Regex::new(&format!("^(?:{regex})$"))
                .map_err(|e| format!("{arg}: invalid regex '{regex}': {e}"))?;
            let depth = if regex.contains('/') { usize::MAX } else { 1 };
            walk(&dir, depth, &mut found)?;
            for (path, size) in found {
                let name = utf8_name(path.strip_prefix(&dir).unwrap_or(&path))?;
                if re.is_match(&name) {
                    files.push(LocalFile { path, name, size });
                }
            }
        }
        SourceKind::Glob { base, pattern } => {
            let glob = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("{arg}: invalid glob: {e}"))?
                .compile_matcher();
            let rest = pattern[base.to_string_lossy().len()..].trim_start_matches('/');
            let depth = if rest.contains("**") {
                usize::MAX
            } else {
                rest.split('/').count()
            };
            walk(&base, depth, &mut found)?;
            for (path, size) in found {
                if glob.is_match(&path) {
                    let name = utf8_name(path.strip_prefix(&base).unwrap_or(&path))?;
                    files.push(LocalFile { path, name, size });
                }
            }
        }
    }
    Ok(files)
}

/// `key` as a prefix ("directory"): empty, or ending in `/`.
pub fn as_dir(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_owned()
    } else {
        format!("{key}/")
    }
}

/// The part of `key` below the "directory" of `prefix` (everything up to and including its
/// last `/`): what `-p REGEX` is matched against, and the path a download writes.
pub fn below_dir<'a>(prefix: &str, key: &'a str) -> &'a str {
    let dir = prefix.rfind('/').map_or(0, |i| i + 1);
    key.get(dir..).unwrap_or(key)
}

/// `-p REGEX`: keeps keys whose part below the prefix's directory contains a match
/// (unanchored: write `^` and `$` to anchor).
#[derive(Debug, Clone)]
pub struct KeyFilter {
    re: Option<Regex>,
}

impl KeyFilter {
    pub fn new(pattern: Option<&str>) -> Result<Self, String> {
        let re = pattern
            .map(|p| Regex::new(p).map_err(|e| format!("invalid regex '{p}': {e}")))
            .transpose()?;
        Ok(Self { re })
    }

    pub fn keeps(&self, prefix: &str, key: &str) -> bool {
        self.re
            .as_ref()
            .is_none_or(|re| re.is_match(below_dir(prefix, key)))
    }
}

/// A remote key with glob characters (`* ? [ {`), as s5cmd users write them:
/// `data/train/*.tfrecord`, `logs/**/2024-*.json`. The key up to the last `/` before the
/// first glob character is a literal prefix (the "directory" listed); the rest must match
/// the whole key below it, with the upload globs' rules: `*` and `?` do not cross `/`, `**`
/// does, `{a,b}` alternates.
#[derive(Debug, Clone)]
pub struct KeyGlob {
    /// The literal part, empty or ending in `/`.
    pub dir: String,
    rest: String,
    matcher: globset::GlobMatcher,
}

impl KeyGlob {
    /// `None` when `key` has no glob character.
    pub fn parse(key: &str) -> Result<Option<Self>, String> {
        let Some(first) = key.find(GLOB_CHARS) else {
            return Ok(None);
        };
        let cut = key[..first].rfind('/').map_or(0, |i| i + 1);
        let (dir, rest) = key.split_at(cut);
        let matcher = globset::GlobBuilder::new(rest)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("invalid glob '{rest}': {e}"))?
            .compile_matcher();
        Ok(Some(Self {
            dir: dir.to_owned(),
            rest: rest.to_owned(),
            matcher,
        }))
    }

    /// Whether matches may lie deeper than one level below [`Self::dir`].
    pub fn recursive(&self) -> bool {
        self.rest.contains('/') || self.rest.contains("**")
    }

    /// Where to list for `key` and whether to descend: a glob's literal directory, deeper
    /// where it can match (or with `recursive`); else `key` itself.
    pub fn listing<'a>(glob: Option<&'a Self>, key: &'a str, recursive: bool) -> (&'a str, bool) {
        match glob {
            Some(g) => (g.dir.as_str(), recursive || g.recursive()),
            None => (key, recursive),
        }
    }

    /// Whether `key` (a whole key) matches.
    pub fn matches(&self, key: &str) -> bool {
        key.strip_prefix(self.dir.as_str())
            .is_some_and(|rest| self.matcher.is_match(rest))
    }
}

/// A key's path below a download directory, or why it cannot be one: empty, absolute,
/// with empty, `.` or `..` segments, or holding a NUL byte. Nothing is rewritten, so two keys
/// can never land on one file.
pub fn safe_relative(rel: &str) -> Result<&str, String> {
    if rel.is_empty() {
        return Err("empty path".to_owned());
    }
    if rel.starts_with('/') {
        return Err(format!("'{rel}' is an absolute path"));
    }
    if rel.contains('\0') {
        return Err(format!("'{rel}' contains a NUL byte"));
    }
    if rel
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!("'{rel}' has an empty, '.' or '..' segment"));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in [
            "logs/a.log",
            "logs/xa.logz",
            "logs/b.txt",
            "logs/sub/c.log",
            "logs/2024/d.log",
        ] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        t
    }

    fn names(arg: &str, cwd: &Path) -> Vec<String> {
        expand(arg, cwd)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn regex_is_anchored_to_the_whole_name() {
        let t = tree();
        let root = t.path().to_str().unwrap();
        assert_eq!(names(&format!("{root}/logs/a\\.log"), t.path()), ["a.log"]);
        assert_eq!(
            names(&format!("{root}/logs/.*\\.log$"), t.path()),
            ["a.log"]
        );
        assert_eq!(
            names(&format!("{root}/logs/.*/.*\\.log"), t.path()),
            ["2024/d.log", "sub/c.log"]
        );
        assert_eq!(
            names(&format!("{root}/logs/(a|b)\\..*"), t.path()),
            ["a.log", "b.txt"]
        );
    }

    #[test]
    fn globs_do_not_cross_directories_unless_double_star() {
        let t = tree();
        assert_eq!(names("logs/*.log", t.path()), ["a.log"]);
        assert_eq!(
            names("logs/**/*.log", t.path()),
            ["2024/d.log", "a.log", "sub/c.log"]
        );
        assert_eq!(names("logs/?.txt", t.path()), ["b.txt"]);
    }

    #[test]
    fn directories_keep_their_name_unless_trailing_slash() {
        let t = tree();
        let with = names("logs", t.path());
        assert!(with.contains(&"logs/sub/c.log".to_owned()), "{with:?}");
        let without = names("./logs/", t.path());
        assert!(without.contains(&"sub/c.log".to_owned()), "{without:?}");
        assert_eq!(names("logs/b.txt", t.path()), ["b.txt"]);
        assert!(expand("nope", t.path())
            .unwrap_err()
            .contains("no such file"));
        assert!(expand("logs/(", t.path())
            .unwrap_err()
            .contains("invalid regex"));
    }

    #[test]
    fn sanitiser_refuses_escapes() {
        assert_eq!(safe_relative("a/b.bin").unwrap(), "a/b.bin");
        for bad in [
            "",
            "/etc/passwd",
            "a/../../x",
            "..",
            "./a",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_globs_list_their_literal_directory_and_match_whole_keys() {
        assert!(KeyGlob::parse("data/train/x.bin").unwrap().is_none());
        let g = KeyGlob::parse("data/train/*.bin").unwrap().unwrap();
        assert_eq!(g.dir, "data/train/");
        assert!(!g.recursive());
        assert!(g.matches("data/train/a.bin"));
        assert!(!g.matches("data/train/sub/a.bin"), "* does not cross /");
        assert!(!g.matches("data/train/a.bin.1"), "the whole key must match");
        assert!(!g.matches("data/other/a.bin"));
        let deep = KeyGlob::parse("logs/**/2024-*.json").unwrap().unwrap();
        assert_eq!(deep.dir, "logs/");
        assert!(deep.recursive());
        assert!(deep.matches("logs/a/b/2024-01.json"));
        assert!(deep.matches("logs/2024-01.json"));
        assert!(!deep.matches("logs/a/2023-01.json"));
        let top = KeyGlob::parse("shard-{0,1}?.tar").unwrap().unwrap();
        assert_eq!(top.dir, "");
        assert!(top.matches("shard-07.tar") && top.matches("shard-13.tar"));
        assert!(!top.matches("shard-27.tar"));
        let mid = KeyGlob::parse("runs/r[0-9]/ckpt").unwrap().unwrap();
        assert_eq!(mid.dir, "runs/");
        assert!(mid.recursive() && mid.matches("runs/r3/ckpt"));
        assert!(KeyGlob::parse("a/[z-a]").is_err());
    }

    #[test]
    fn key_filter_searches_below_the_prefix_directory() {
        let f = KeyFilter::new(Some(r"^train.*\.bin$")).unwrap();
        assert!(f.keeps("data/tr", "data/train/x.bin"));
        assert!(!f.keeps("data/", "data/xtrain/x.bin"));
        assert!(KeyFilter::new(None).unwrap().keeps("p", "anything"));
        assert!(KeyFilter::new(Some("(")).is_err());
        assert_eq!(absolute("a/../b/./c", Path::new("/x")), Path::new("/x/b/c"));
    }
}
