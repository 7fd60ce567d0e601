//! Keys as paths: validation, and the names of in-progress writes.

use std::sync::atomic::{AtomicU64, Ordering};

use s3dlio_store_core::{validate_key, Error, Result};

/// Marks the temporary file of an in-progress write: `.{name}.s3dlio-tmp-{pid}-{n}`.
const TEMP_MARKER: &str = ".s3dlio-tmp-";

/// Longest file name most file systems accept (NAME_MAX).
const NAME_MAX: usize = 255;

/// Reject keys that are not a plain relative path of normal segments: on a file system
/// `a//b`, `./a` and `a/../b` would alias other keys (or escape the root), and `a/` names
/// a directory, not an object. Segments that look like temporary files are refused too, as
/// listings skip them.
pub fn check_key(key: &str) -> Result<()> {
    validate_key(key)?;
    let bad = |why: &str| Err(Error::invalid_input(format!("invalid key {key:?}: {why}")));
    if key.starts_with('/') {
        return bad("keys are relative to the store root and must not start with '/'");
    }
    if key.ends_with('/') {
        return bad("a key ending in '/' names a directory, not an object");
    }
    check_segments(key.split('/'), key)
}

/// Check the complete segments of a listing prefix: everything before its last `/`. The
/// part after it may be any partial name (`a/.` matches `a/.hidden`).
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.contains('\0') {
        return Err(Error::invalid_input(format!(
            "invalid prefix {prefix:?}: contains a NUL byte"
        )));
    }
    if prefix.starts_with('/') {
        return Err(Error::invalid_input(format!(
            "invalid prefix {prefix:?}: keys are relative to the store root and must not start with '/'"
        )));
    }
    let (dir, _) = split_prefix(prefix);
    match dir.strip_suffix('/') {
        Some(dir) => check_segments(dir.split('/'), prefix),
        None => Ok(()),
    }
}

fn check_segments<'a>(segments: impl Iterator<Item = &'a str>, whole: &str) -> Result<()> {
    for seg in segments {
        let why = match seg {
            "" => "empty path segment ('//')",
            "." | ".." => "'.' and '..' segments are not allowed",
            s if is_temp_name(s) => {
                "the name is reserved for temporary files of in-progress writes"
            }
            _ => continue,
        };
        return Err(Error::invalid_input(format!(
            "invalid key {whole:?}: {why}"
        )));
    }
    Ok(())
}

/// Split a listing prefix into the directory to read (empty, or ending in `/`) and the
/// start of the names to keep in it.
pub(crate) fn split_prefix(prefix: &str) -> (&str, &str) {
    match prefix.rfind('/') {
        Some(i) => prefix.split_at(i + 1),
        None => ("", prefix),
    }
}

/// Split a valid key into its parent directory (possibly empty) and its file name.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("", key),
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name for a write of `name`, in the same directory. Unique within the
/// process (counter) and across live processes (pid); kept under NAME_MAX by shortening
/// the copy of `name` it carries.
pub(crate) fn temp_name(name: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{TEMP_MARKER}{}-{n}", std::process::id());
    let mut keep = name.len().min(NAME_MAX - 1 - suffix.len());
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!(".{}{suffix}", &name[..keep])
}

/// Whether a directory entry is the temporary file of an in-progress write.
pub(crate) fn is_temp_name(name: &str) -> bool {
    if !name.starts_with('.') {
        return false;
    }
    let Some(i) = name.rfind(TEMP_MARKER) else {
        return false;
    };
    let Some((pid, n)) = name[i + TEMP_MARKER.len()..].split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(pid) && digits(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3dlio_store_core::ErrorKind;

    #[test]
    fn keys() {
        for ok in [
            "a",
            "a/b",
            ".hidden",
            "a/.b",
            "..x",
            "a/b.c/d",
            "tmp/.tmpAbC/x",
        ] {
            check_key(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "", "/a", "a/", "a//b", "./a", "a/./b", "../a", "a/..", "a/b/..", "a\0b",
        ] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        let e = check_key("x//y").unwrap_err();
        assert!(e.to_string().contains("\"x//y\""), "{e}");
    }

    #[test]
    fn prefixes() {
        for ok in ["", "a", "a/", "a/b", "a/.", "a/..", "a/b/c."] {
            check_prefix(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["/", "/a", "a//", "a//b", "./", "../x", "a/../b"] {
            assert_eq!(
                check_prefix(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        assert_eq!(split_prefix("a/b/cd"), ("a/b/", "cd"));
        assert_eq!(split_prefix("a/b/"), ("a/b/", ""));
        assert_eq!(split_prefix("ab"), ("", "ab"));
        assert_eq!(split_key("a/b/c"), ("a/b", "c"));
        assert_eq!(split_key("c"), ("", "c"));
    }

    #[test]
    fn temp_names_are_recognised_and_bounded() {
        let t = temp_name("data.bin");
        assert!(t.starts_with(".data.bin.s3dlio-tmp-"), "{t}");
        assert!(is_temp_name(&t));
        assert!(temp_name("data.bin") != t, "temp names repeat");
        let long = "é".repeat(127); // 254 bytes
        let t = temp_name(&long);
        assert!(
            t.len() <= NAME_MAX && is_temp_name(&t),
            "{} bytes: {t}",
            t.len()
        );
        for not in [
            ".tmpAbc",
            "x.s3dlio-tmp-1-2",
            ".x.s3dlio-tmp-",
            ".x.s3dlio-tmp-1-",
            ".x.s3dlio-tmp-a-1",
        ] {
            assert!(!is_temp_name(not), "{not}");
        }
        assert_eq!(
            check_key(&format!("a/{}", temp_name("b")))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
    }
}
