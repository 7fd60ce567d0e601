//! The background abort every multipart upload shares.

pub(crate) use s3dlio_store_core::pending::abort_in_background;
