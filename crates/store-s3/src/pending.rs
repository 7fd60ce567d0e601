//! The pending-bytes buffer and background abort every multipart writer shares.

pub(crate) use s3dlio_store_core::pending::{abort_in_background, Pending};
