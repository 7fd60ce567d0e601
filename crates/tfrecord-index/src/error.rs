//! Errors: a malformed TFRecord names the byte offset where the bad record starts.

use std::fmt;

/// What is wrong with a TFRecord file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FormatErrorKind {
    /// The masked CRC32C of the 8 length bytes does not match: a flipped bit in the length
    /// or its CRC, or input that is not TFRecord at all.
    LengthCrc,
    /// The masked CRC32C of the data does not match.
    DataCrc,
    /// The input ends inside a record (in its header, data or trailing CRC).
    Truncated,
    /// The input has no bytes at all (an error only where [`crate::IndexOptions::allow_empty`]
    /// is off, as in `s3-cli tfrecord verify`).
    Empty,
    /// A record (or an index entry) does not fit where it claims to be.
    Invalid,
}

impl FormatErrorKind {
    /// A short stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LengthCrc => "bad length CRC",
            Self::DataCrc => "bad data CRC",
            Self::Truncated => "truncated record",
            Self::Empty => "empty file",
            Self::Invalid => "invalid record",
        }
    }
}

/// A malformed record: what, and the offset of the record it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub kind: FormatErrorKind,
    /// Byte offset of the start of the bad record (its length field).
    pub offset: u64,
    /// Number of the bad record (records before it: `record`).
    pub record: u64,
    /// Details: the values found and expected.
    pub detail: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {} (record {})",
            self.kind.as_str(),
            self.offset,
            self.record
        )?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for FormatError {}

/// Any failure of this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The data is not valid TFRecord (or not a valid index).
    Format(FormatError),
    /// A store failed (GET, HEAD, ...).
    Store(s3dlio_store_core::Error),
    /// Local I/O failed; the string says on what.
    Io(String, std::io::Error),
    /// A bad argument: a record number past the index, an index line that does not parse.
    InvalidInput(String),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The format error, if this is one.
    pub fn format(&self) -> Option<&FormatError> {
        match self {
            Self::Format(f) => Some(f),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl fmt::Display, e: std::io::Error) -> Self {
        Self::Io(what.to_string(), e)
    }

    /// The same error, its message prefixed with `what` (a path or URI).
    pub(crate) fn within(self, what: &str) -> Self {
        match self {
            Self::Format(mut f) => {
                f.detail = if f.detail.is_empty() {
                    format!("in {what}")
                } else {
                    format!("{} (in {what})", f.detail)
                };
                Self::Format(f)
            }
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(e) => e.fmt(f),
            Self::Store(e) => e.fmt(f),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::InvalidInput(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Format(e) => Some(e),
            Self::Store(e) => Some(e),
            Self::Io(_, e) => Some(e),
            Self::InvalidInput(_) => None,
        }
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

impl From<s3dlio_store_core::Error> for Error {
    fn from(e: s3dlio_store_core::Error) -> Self {
        Self::Store(e)
    }
}

impl From<Error> for s3dlio_store_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => e,
            Error::Io(what, io) => s3dlio_store_core::Error::from_io(io, what),
            other => s3dlio_store_core::Error::invalid_input(other.to_string()),
        }
    }
}
