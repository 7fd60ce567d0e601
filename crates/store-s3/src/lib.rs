//! The `s3://` backend for s3dlio.
//!
//! This crate will hold the `ObjectStore` trait on aws-sdk-s3 for AWS S3 and any S3-compatible store (MinIO, Vast, Ceph, SeaweedFS), with concurrent ranged GETs pinned to one ETag, concurrent multipart uploads, and the standard AWS configuration chain.
//!
//! It is empty until its issue lands; nothing here is usable yet.
