//! What `O_DIRECT` asks of a file: the alignment of buffers, offsets and lengths, found
//! from the kernel (`statx` with `STATX_DIOALIGN`, Linux 6.1+), else the device's logical
//! block size (sysfs), else 4 KiB. Also: naming the file system a path lives on (for
//! errors), and probing a directory for `O_DIRECT` support.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};

/// The alignment used when nothing better is known.
pub const DEFAULT_ALIGN: usize = 4096;

/// The I/O alignment of `file` (on device `dev`): a power of two of at least 512 bytes.
pub(crate) fn discover(file: &File, dev: u64) -> usize {
    if let Ok(st) = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) {
        if st.stx_mask & StatxFlags::DIOALIGN.bits() != 0 && st.stx_dio_offset_align != 0 {
            let a = st.stx_dio_offset_align.max(st.stx_dio_mem_align) as usize;
            return a.next_power_of_two().max(512);
        }
    }
    logical_block_size(dev).unwrap_or(DEFAULT_ALIGN)
}

/// The alignment (of buffers, offsets and lengths) a [`DirectStore`](crate::DirectStore)
/// uses for O_DIRECT I/O of the file at `path`: from `statx` (`STATX_DIOALIGN`), else the
/// device's logical block size, else [`DEFAULT_ALIGN`].
pub fn alignment_of(path: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let file = File::open(path)?;
    let dev = file.metadata()?.dev();
    Ok(discover(&file, dev))
}

/// The logical block size of the block device `dev` (or of the disk a partition is on).
fn logical_block_size(dev: u64) -> Option<usize> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let base = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    [
        base.join("queue/logical_block_size"),
        base.join("../queue/logical_block_size"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse::<usize>().ok())
    .filter(|n| n.is_power_of_two() && *n >= 512)
}

/// The type of the file system `path` is on (`ext4`, `tmpfs`, ...), from the mount table:
/// the longest mount point that contains the path's canonical form. A path that does not
/// exist yet (a key about to be written) is looked up by its nearest existing ancestor.
pub fn filesystem_of(path: &Path) -> Option<String> {
    let canon = path
        .ancestors()
        .find_map(|p| std::fs::canonicalize(p).ok())?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, target, fstype) = (f.next()?, f.next()?, f.next()?);
            let target = target.replace("\\040", " ");
            canon
                .starts_with(&target)
                .then(|| (target.len(), fstype.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
}

/// Whether files in the directory `dir` can be opened with `O_DIRECT`: creates and removes
/// a small probe file there. `Err` if the directory cannot be written at all.
pub fn supports_o_direct(dir: &Path) -> std::io::Result<bool> {
    let probe = dir.join(format!(".s3dlio-direct-probe-{}", std::process::id()));
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
    let res = rustix::fs::open(
        &probe,
        flags | OFlags::DIRECT,
        Mode::from_bits_truncate(0o600),
    );
    let out = match res {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::INVAL) => {
            // Refused: check that the directory is writable at all.
            rustix::fs::open(&probe, flags, Mode::from_bits_truncate(0o600))
                .map(|_| false)
                .map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_file(&probe);
    out
}
