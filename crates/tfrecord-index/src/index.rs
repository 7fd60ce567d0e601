//! The DALI index: text, one `offset size\n` line per record, `size` the whole framed
//! record. Byte-identical to what DALI's and the `tfrecord` package's `tfrecord2idx` write.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{IndexEntry, RECORD_OVERHEAD};
use crate::parse::IndexOptions;
use crate::source::index_file;

/// Write `entries` as a DALI index.
pub fn write_index(entries: &[IndexEntry], mut w: impl Write) -> std::io::Result<()> {
    let mut out = String::with_capacity(64 << 10);
    for e in entries {
        use std::fmt::Write as _;
        let _ = writeln!(out, "{} {}", e.offset, e.size);
        if out.len() >= (64 << 10) - 64 {
            w.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    w.write_all(out.as_bytes())?;
    w.flush()
}

/// Read a DALI index. Fields are separated by whitespace; blank lines are ignored; a line
/// that is not two integers, or a size below the 16 framing bytes, is an error naming the
/// line.
pub fn read_index(r: impl BufRead) -> Result<Vec<IndexEntry>> {
    let mut entries = Vec::new();
    for (n, line) in r.lines().enumerate() {
        let line = line.map_err(|e| Error::io("reading the index", e))?;
        let mut fields = line.split_whitespace();
        let (Some(a), b, c) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let bad = |why: &str| Error::InvalidInput(format!("index line {}: {why}: '{line}'", n + 1));
        let (Some(b), None) = (b, c) else {
            return Err(bad("expected 'offset size'"));
        };
        let offset = a.parse().map_err(|_| bad("offset is not a number"))?;
        let size: u64 = b.parse().map_err(|_| bad("size is not a number"))?;
        if size < RECORD_OVERHEAD {
            return Err(bad("a record is at least 16 bytes"));
        }
        entries.push(IndexEntry::new(offset, size));
    }
    Ok(entries)
}

/// Read the DALI index file at `path`.
pub fn read_index_file(path: impl AsRef<Path>) -> Result<Vec<IndexEntry>> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    read_index(std::io::BufReader::new(f)).map_err(|e| match e {
        Error::InvalidInput(m) => Error::InvalidInput(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Where an index goes by default: `<tfrecord path>.idx`.
pub fn default_index_path(tfrecord: impl AsRef<Path>) -> PathBuf {
    let mut p = tfrecord.as_ref().as_os_str().to_owned();
    p.push(".idx");
    PathBuf::from(p)
}

/// Index the local TFRecord file `tfrecord` and write the index to `index` (default
/// `<tfrecord>.idx`), replacing it atomically (written aside, then renamed). Returns the
/// entries. The original s3dlio's `create_tfrecord_index(path, index_path=None)`.
pub fn create_index(
    tfrecord: impl AsRef<Path>,
    index: Option<&Path>,
    opts: IndexOptions,
) -> Result<Vec<IndexEntry>> {
    let entries = index_file(tfrecord.as_ref(), opts)?;
    let dest = index.map_or_else(|| default_index_path(tfrecord.as_ref()), Path::to_path_buf);
    write_index_file(&entries, &dest)?;
    Ok(entries)
}

/// Write an index file atomically: to a temporary name beside it, then renamed.
pub(crate) fn write_index_file(entries: &[IndexEntry], dest: &Path) -> Result<()> {
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let res = std::fs::File::create(&tmp)
        .and_then(|f| write_index(entries, std::io::BufWriter::new(f)))
        .and_then(|()| std::fs::rename(&tmp, dest));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(dest.display(), e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_text_round_trips_and_bad_lines_are_named() {
        let e = vec![IndexEntry::new(0, 16), IndexEntry::new(16, 1 << 40)];
        let mut t = Vec::new();
        write_index(&e, &mut t).unwrap();
        assert_eq!(t, b"0 16\n16 1099511627776\n");
        assert_eq!(read_index(&t[..]).unwrap(), e);
        assert_eq!(read_index(&b"0 16\n\n 16  20 \n"[..]).unwrap().len(), 2);
        let err = read_index(&b"0 16\n16 x\n"[..]).unwrap_err().to_string();
        assert!(err.contains("index line 2"), "{err}");
        assert!(read_index(&b"0 15\n"[..]).is_err());
        assert!(read_index(&b"0 16 3\n"[..]).is_err());
        assert_eq!(
            default_index_path("/d/a.tfrecord"),
            PathBuf::from("/d/a.tfrecord.idx")
        );
    }
}
