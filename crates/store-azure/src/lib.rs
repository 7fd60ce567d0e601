//! The `az://` backend for s3dlio.
//!
//! This crate will hold the `ObjectStore` trait on an Azure Blob SDK crate, with staged-block uploads committed once, concurrent ranged reads pinned to one ETag, and the Azure credential kinds users expect.
//!
//! It is empty until its issue lands; nothing here is usable yet.
