//! TFRecord framing and the NVIDIA DALI index format for s3dlio.
//!
//! - [`Indexer`]: an incremental TFRecord parser fed chunks of any size (a record may span
//!   any number of chunks); it yields each record's `(offset, size)` and checks the length
//!   CRC always and the data CRC when asked. It never holds a record body.
//! - [`index_file`], [`index_reader`], [`index_stream`], [`index_object`], [`index_uri`]:
//!   the parser over a local file (seeking over bodies it need not read), any reader, any
//!   [`ByteStream`](s3dlio_store_core::ByteStream), or any object of any
//!   [`ObjectStore`](s3dlio_store_core::ObjectStore).
//! - [`write_index`] / [`read_index`]: the DALI index, one `offset size\n` line per record,
//!   byte-identical to DALI's and the `tfrecord` PyPI package's `tfrecord2idx`.
//! - [`TfRecordWriter`], [`append_record`], [`frame_in_place`]: records with correct masked
//!   CRC32C values.
//! - [`RecordReader`]: records by number through ranged GETs, neighbours coalesced into one
//!   request; [`epoch_order`] shuffles by seed and shards by rank.
//!
//! See docs/TFRECORD.md for the format, the semantics and the errors.
//!
//! ```
//! use s3dlio_tfrecord_index::{read_index, write_index, Indexer, TfRecordWriter};
//!
//! let mut w = TfRecordWriter::new(Vec::new());
//! for r in [&b"first"[..], b"", b"third record"] {
//!     w.write_record(r).unwrap();
//! }
//! let file = w.into_inner();
//! let mut ix = Indexer::new(true);
//! for chunk in file.chunks(7) {
//!     ix.feed(chunk).unwrap();
//! }
//! let entries = ix.finish().unwrap();
//! let mut text = Vec::new();
//! write_index(&entries, &mut text).unwrap();
//! assert_eq!(text, b"0 21\n21 16\n37 28\n");
//! assert_eq!(read_index(&text[..]).unwrap(), entries);
//! ```

mod access;
mod error;
mod format;
/// The parsers' invariants, for the fuzz properties and the cargo-fuzz target.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod index;
mod order;
mod parse;
mod source;
mod writer;

pub use access::{FetchOptions, RecordReader, Span};
pub use error::{Error, FormatError, FormatErrorKind, Result};
pub use format::{
    decode_record, masked_crc32c, IndexEntry, FOOTER_LEN, HEADER_LEN, RECORD_OVERHEAD,
};
pub use index::{create_index, default_index_path, read_index, read_index_file, write_index};
pub use order::{epoch_order, shuffled};
pub use parse::{IndexOptions, Indexer};
pub use source::{index_file, index_object, index_reader, index_stream, index_uri};
pub use writer::{append_record, encode_header, frame_in_place, TfRecordWriter};

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
