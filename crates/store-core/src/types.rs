//! Plain data that crosses the [`ObjectStore`](crate::ObjectStore) trait: metadata, ranges,
//! options and results.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::SystemTime;

use crate::error::{Error, ErrorKind, Result};

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store (no scheme, no bucket).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written, where the backend records it.
    pub last_modified: Option<SystemTime>,
    /// An opaque version tag; changes whenever the content may have changed.
    pub etag: Option<String>,
    /// MIME type, where the backend records one.
    pub content_type: Option<String>,
    /// User metadata (S3 `x-amz-meta-*`, Azure blob metadata).
    pub metadata: BTreeMap<String, String>,
    /// Where the backend reports one: the storage class (S3 `x-amz-storage-class`) or the
    /// access tier (Azure `Hot`, `Cool`, `Cold`, `Archive`).
    pub storage_class: Option<String>,
}

impl ObjectMeta {
    /// Metadata with only a key and a size.
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        Self {
            key: key.into(),
            size,
            last_modified: None,
            etag: None,
            content_type: None,
            metadata: BTreeMap::new(),
            storage_class: None,
        }
    }
}

/// A byte range of an object, in the three forms HTTP has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteRange {
    /// `start..end` (end exclusive). An end past the object is clamped to its size.
    Bounded { start: u64, end: u64 },
    /// Everything from `offset` to the end.
    From(u64),
    /// The last `n` bytes (all of them if the object is shorter).
    Suffix(u64),
}

impl ByteRange {
    /// `offset` and an optional `length`, as CLI and Python callers give them.
    pub fn from_offset_length(offset: u64, length: Option<u64>) -> Result<Self> {
        match length {
            None => Ok(Self::From(offset)),
            Some(len) => {
                let end = offset.checked_add(len).ok_or_else(|| {
                    Error::invalid_input(format!("range offset {offset} + length {len} overflows"))
                })?;
                Self::bounded(offset, end)
            }
        }
    }

    /// A checked `start..end`; empty or reversed ranges are refused.
    pub fn bounded(start: u64, end: u64) -> Result<Self> {
        let r = Self::Bounded { start, end };
        r.validate()?;
        Ok(r)
    }

    /// Reject ranges that are malformed whatever the object's size.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Bounded { start, end } if start >= end => Err(Error::invalid_input(format!(
                "empty or reversed byte range {start}..{end}"
            ))),
            Self::Suffix(0) => Err(Error::invalid_input("suffix range of 0 bytes")),
            _ => Ok(()),
        }
    }

    /// The concrete `start..end` this range selects in an object of `size` bytes, with the
    /// semantics of S3: a start at or past the end is [`ErrorKind::RangeNotSatisfiable`], an
    /// end past the end is clamped, a suffix longer than the object selects all of it.
    pub fn resolve(&self, size: u64) -> Result<Range<u64>> {
        self.validate()?;
        let unsatisfiable = |start: u64| {
            Error::new(
                ErrorKind::RangeNotSatisfiable,
                format!("range starts at byte {start} but the object has {size} bytes"),
            )
        };
        match *self {
            Self::Bounded { start, end } => {
                if start >= size {
                    return Err(unsatisfiable(start));
                }
                Ok(start..end.min(size))
            }
            Self::From(start) => {
                if start >= size {
                    return Err(unsatisfiable(start));
                }
                Ok(start..size)
            }
            Self::Suffix(n) => Ok(size.saturating_sub(n)..size),
        }
    }

    /// The HTTP `Range` header value (`bytes=…`).
    pub fn to_http_header(&self) -> String {
        match *self {
            Self::Bounded { start, end } => format!("bytes={start}-{}", end.saturating_sub(1)),
            Self::From(start) => format!("bytes={start}-"),
            Self::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

impl From<Range<u64>> for ByteRange {
    fn from(r: Range<u64>) -> Self {
        Self::Bounded {
            start: r.start,
            end: r.end,
        }
    }
}

impl From<std::ops::RangeFrom<u64>> for ByteRange {
    fn from(r: std::ops::RangeFrom<u64>) -> Self {
        Self::From(r.start)
    }
}

/// Options of [`ObjectStore::get`](crate::ObjectStore::get).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Read only this range.
    pub range: Option<ByteRange>,
    /// Fail with [`ErrorKind::PreconditionFailed`] unless the object's ETag is this one.
    pub if_match: Option<String>,
}

impl GetOptions {
    pub fn range(range: impl Into<ByteRange>) -> Self {
        Self {
            range: Some(range.into()),
            ..Self::default()
        }
    }

    pub fn with_if_match(mut self, etag: impl Into<String>) -> Self {
        self.if_match = Some(etag.into());
        self
    }
}

/// How a put treats an object that is already there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutMode {
    /// Replace it.
    #[default]
    Overwrite,
    /// Fail with [`ErrorKind::AlreadyExists`] if the key exists (S3 `If-None-Match: *`).
    Create,
    /// Replace it only if its ETag is this one, else [`ErrorKind::PreconditionFailed`].
    IfMatch(String),
}

/// Options of [`ObjectStore::put`](crate::ObjectStore::put) and of writers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub mode: PutMode,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl PutOptions {
    /// Create-only: fail if the key exists.
    pub fn create() -> Self {
        Self {
            mode: PutMode::Create,
            ..Self::default()
        }
    }

    /// Replace only the version with this ETag.
    pub fn if_match(etag: impl Into<String>) -> Self {
        Self {
            mode: PutMode::IfMatch(etag.into()),
            ..Self::default()
        }
    }
}

/// What a completed write reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResult {
    /// The new object's ETag, where the backend has one.
    pub etag: Option<String>,
    /// Bytes stored.
    pub size: u64,
}

/// Options of [`ObjectStore::copy`](crate::ObjectStore::copy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Fail with [`ErrorKind::AlreadyExists`] if the destination exists.
    pub create_only: bool,
}

/// Options of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// `true`: every key under the prefix. `false`: one level, with deeper keys folded into
    /// [`ListItem::Prefix`] entries at the next `/` (S3's delimiter listing).
    pub recursive: bool,
    /// Only keys that sort strictly after this one (resumes a listing).
    pub start_after: Option<String>,
    /// Entries per backend request (S3 caps it at 1,000). `None`: the backend's default.
    pub page_size: Option<usize>,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            recursive: true,
            start_after: None,
            page_size: None,
        }
    }
}

impl ListOptions {
    pub fn recursive() -> Self {
        Self::default()
    }

    pub fn delimited() -> Self {
        Self {
            recursive: false,
            ..Self::default()
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    Object(ObjectMeta),
    /// A common prefix, ending in `/` (only in delimited listings).
    Prefix(String),
}

impl ListItem {
    /// The key or prefix; listings are ordered by it.
    pub fn name(&self) -> &str {
        match self {
            Self::Object(m) => &m.key,
            Self::Prefix(p) => p,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects and common prefixes, in lexicographic (byte) order of their names.
    pub items: Vec<ListItem>,
    /// Opaque token for the next page; `None` when this is the last one.
    pub next: Option<String>,
}

/// What a backend supports. Operations a backend lacks fail at once with
/// [`ErrorKind::NotSupported`]; the conformance suite picks its cases from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Ranged reads.
    pub range_get: bool,
    /// `GetOptions::if_match`.
    pub get_if_match: bool,
    /// `PutMode::Create`.
    pub put_create_only: bool,
    /// `PutMode::IfMatch`.
    pub put_if_match: bool,
    /// `PutOptions::content_type` is stored and returned.
    pub content_type: bool,
    /// `PutOptions::metadata` is stored and returned.
    pub user_metadata: bool,
    /// Delimited listings.
    pub list_delimiter: bool,
    /// Server-side copy.
    pub copy: bool,
    /// ETags on every object.
    pub etag: bool,
    /// `last_modified` on every object.
    pub last_modified: bool,
    /// A key may be both an object and a prefix of others (`a` and `a/b`); file systems can't.
    pub object_and_prefix_same_name: bool,
}

impl Capabilities {
    /// Everything an S3-class store offers.
    pub const FULL: Self = Self {
        range_get: true,
        get_if_match: true,
        put_create_only: true,
        put_if_match: true,
        content_type: true,
        user_metadata: true,
        list_delimiter: true,
        copy: true,
        etag: true,
        last_modified: true,
        object_and_prefix_same_name: true,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_resolution_follows_s3() {
        assert_eq!(ByteRange::from(2..5).resolve(10).unwrap(), 2..5);
        assert_eq!(ByteRange::from(8..50).resolve(10).unwrap(), 8..10);
        assert_eq!(ByteRange::From(3).resolve(10).unwrap(), 3..10);
        assert_eq!(ByteRange::Suffix(4).resolve(10).unwrap(), 6..10);
        assert_eq!(ByteRange::Suffix(40).resolve(10).unwrap(), 0..10);
        assert_eq!(ByteRange::Suffix(4).resolve(0).unwrap(), 0..0);
        let k = |r: ByteRange, size| r.resolve(size).unwrap_err().kind();
        assert_eq!(k(ByteRange::From(10), 10), ErrorKind::RangeNotSatisfiable);
        assert_eq!(
            k(ByteRange::from(10..12), 10),
            ErrorKind::RangeNotSatisfiable
        );
        assert_eq!(k(ByteRange::from(5..5), 10), ErrorKind::InvalidInput);
        assert_eq!(k(ByteRange::Suffix(0), 10), ErrorKind::InvalidInput);
    }

    #[test]
    fn http_header_forms() {
        assert_eq!(ByteRange::from(0..10).to_http_header(), "bytes=0-9");
        assert_eq!(ByteRange::From(7).to_http_header(), "bytes=7-");
        assert_eq!(ByteRange::Suffix(3).to_http_header(), "bytes=-3");
    }

    #[test]
    fn offset_length() {
        assert_eq!(
            ByteRange::from_offset_length(4, Some(2)).unwrap(),
            ByteRange::from(4..6)
        );
        assert_eq!(
            ByteRange::from_offset_length(4, None).unwrap(),
            ByteRange::From(4)
        );
        assert!(ByteRange::from_offset_length(4, Some(0)).is_err());
        assert!(ByteRange::from_offset_length(u64::MAX, Some(2)).is_err());
    }
}
