//! Tuning of a [`DirectStore`](crate::DirectStore), from code or the environment.

use s3dlio_store_core::{parse_size, Error, Result};

const MIB: usize = 1024 * 1024;

/// What to do where the file system refuses `O_DIRECT` (ramfs, some FUSE and network
/// file systems refuse the open with `EINVAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Fail with `NotSupported`, naming the path and the file system (the default: a
    /// benchmark or a job that asked for direct I/O should not silently get buffered I/O).
    #[default]
    Refuse,
    /// Log a warning (once per file system) and use buffered I/O there instead, dropping
    /// the pages read or written from the page cache afterwards (`POSIX_FADV_DONTNEED`).
    Buffered,
}

/// How a [`DirectStore`](crate::DirectStore) does its I/O. `Default` suits local NVMe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectOptions {
    /// Bytes per read or write system call (rounded up to the file's alignment). Objects
    /// larger than this are read and written as several such I/Os in flight at once.
    /// Default 1 MiB; environment `S3DLIO_DIRECT_IO_SIZE`.
    pub io_size: usize,
    /// I/Os in flight for one request (one `get` body, one `put`, one writer). Default 8;
    /// environment `S3DLIO_DIRECT_QUEUE_DEPTH`.
    pub queue_depth: usize,
    /// Threads doing the store's blocking I/O: the limit on I/Os in flight for the whole
    /// store. Default 16 (direct I/O waits on the device, not the CPU); environment
    /// `S3DLIO_DIRECT_IO_THREADS`.
    pub io_threads: usize,
    /// Idle aligned buffers kept for reuse, in bytes (buffers in use are bounded by the
    /// requests in flight). Default 256 MiB; 0 keeps none; environment
    /// `S3DLIO_DIRECT_BUFFER_POOL_BYTES`.
    pub buffer_pool_bytes: usize,
    /// Where `O_DIRECT` is refused. Default [`Fallback::Refuse`]; environment
    /// `S3DLIO_DIRECT_FALLBACK=buffered` (or `refuse`).
    pub fallback: Fallback,
}

impl Default for DirectOptions {
    fn default() -> Self {
        Self {
            io_size: MIB,
            queue_depth: 8,
            io_threads: 16,
            buffer_pool_bytes: 256 * MIB,
            fallback: Fallback::Refuse,
        }
    }
}

impl DirectOptions {
    /// The defaults, overridden by the `S3DLIO_DIRECT_*` variables that are set. A value
    /// that does not parse is an `InvalidInput` error naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with another source of variables (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut o = Self::default();
        let size = |name: &str, into: &mut usize| -> Result<()> {
            if let Some(v) = get(name) {
                let n = parse_size(&v)
                    .map_err(|e| Error::invalid_input(format!("{name}={v:?}: {e}")))?;
                *into = usize::try_from(n)
                    .map_err(|_| Error::invalid_input(format!("{name}={v:?} is too large")))?;
            }
            Ok(())
        };
        size("S3DLIO_DIRECT_IO_SIZE", &mut o.io_size)?;
        size("S3DLIO_DIRECT_BUFFER_POOL_BYTES", &mut o.buffer_pool_bytes)?;
        let count = |name: &str, into: &mut usize| -> Result<()> {
            if let Some(v) = get(name) {
                *into = v.trim().parse().map_err(|_| {
                    Error::invalid_input(format!("{name}={v:?} is not a whole number"))
                })?;
            }
            Ok(())
        };
        count("S3DLIO_DIRECT_QUEUE_DEPTH", &mut o.queue_depth)?;
        count("S3DLIO_DIRECT_IO_THREADS", &mut o.io_threads)?;
        if let Some(v) = get("S3DLIO_DIRECT_FALLBACK") {
            o.fallback = match v.trim().to_ascii_lowercase().as_str() {
                "buffered" => Fallback::Buffered,
                "refuse" | "error" | "none" | "" => Fallback::Refuse,
                _ => {
                    return Err(Error::invalid_input(format!(
                        "S3DLIO_DIRECT_FALLBACK={v:?}: expected 'buffered' or 'refuse'"
                    )))
                }
            };
        }
        o.validate()?;
        Ok(o)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("io_size", self.io_size),
            ("queue_depth", self.queue_depth),
            ("io_threads", self.io_threads),
        ] {
            if v == 0 {
                return Err(Error::invalid_input(format!(
                    "DirectOptions::{name} must not be 0"
                )));
            }
        }
        if self.io_size > 1 << 30 {
            return Err(Error::invalid_input(
                "DirectOptions::io_size must be at most 1 GiB",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults_and_bad_values_name_the_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            DirectOptions::from_lookup(|_| None).unwrap(),
            DirectOptions::default()
        );
        let o = DirectOptions::from_lookup(env(&[
            ("S3DLIO_DIRECT_IO_SIZE", "4MiB"),
            ("S3DLIO_DIRECT_QUEUE_DEPTH", "32"),
            ("S3DLIO_DIRECT_FALLBACK", "buffered"),
        ]))
        .unwrap();
        assert_eq!(
            (o.io_size, o.queue_depth, o.fallback),
            (4 << 20, 32, Fallback::Buffered)
        );
        let e =
            DirectOptions::from_lookup(env(&[("S3DLIO_DIRECT_FALLBACK", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("S3DLIO_DIRECT_FALLBACK"), "{e}");
        let e = DirectOptions::from_lookup(env(&[("S3DLIO_DIRECT_QUEUE_DEPTH", "0")])).unwrap_err();
        assert!(e.to_string().contains("queue_depth"), "{e}");
    }
}
