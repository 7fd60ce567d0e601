//! The manifest, the `latest` pointer and the rank markers: what is written as JSON, and the
//! layout of keys under a checkpoint store's root.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use s3dlio_store_core::{Error, ErrorKind, Result};

/// The `format` field of every manifest, marker and pointer.
pub const FORMAT: &str = "s3dlio-checkpoint";
/// The manifest format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// How a shard's bytes are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As given.
    #[default]
    None,
    /// Each part is one independent zstd frame (so parts decompress in parallel).
    Zstd,
}

/// One stored object of a shard. A shard's bytes are its parts' (decompressed) bytes in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Key relative to the checkpoint store's root.
    pub key: String,
    /// Bytes stored (compressed, if the shard is).
    pub size: u64,
    /// CRC32C (Castagnoli) of the stored bytes.
    pub crc32c: u32,
    /// Bytes after decompression (equal to `size` when uncompressed).
    pub raw_size: u64,
    /// CRC32C of the bytes after decompression (equal to `crc32c` when uncompressed).
    pub raw_crc32c: u32,
}

/// One named shard of one rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub rank: u32,
    pub name: String,
    pub compression: Compression,
    /// Bytes stored, over all parts.
    pub size: u64,
    /// The shard's bytes as the caller gave them.
    pub raw_size: u64,
    /// CRC32C of the shard's bytes as the caller gave them (all parts, decompressed).
    pub raw_crc32c: u32,
    pub parts: Vec<PartEntry>,
}

/// A committed checkpoint. Written once, create-only, after every shard it names is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub step: u64,
    pub epoch: Option<u64>,
    pub framework: Option<String>,
    pub world_size: u32,
    /// Milliseconds since the Unix epoch when the manifest was written.
    pub created_unix_ms: u64,
    /// The id the ranks of this save agreed on; names its data folder.
    pub save_id: String,
    /// Folder of the shards, relative to the root.
    pub data_prefix: String,
    /// Every shard, ordered by rank, then name.
    pub shards: Vec<ShardEntry>,
    /// The caller's metadata.
    pub metadata: BTreeMap<String, String>,
}

impl Manifest {
    /// The shard `name` of `rank`.
    pub fn shard(&self, rank: u32, name: &str) -> Result<&ShardEntry> {
        self.shards
            .iter()
            .find(|s| s.rank == rank && s.name == name)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "checkpoint step {} has no shard '{name}' of rank {rank} (it has: {})",
                    self.step,
                    self.shard_names()
                ))
            })
    }

    /// The shards of `rank`.
    pub fn rank_shards(&self, rank: u32) -> impl Iterator<Item = &ShardEntry> {
        self.shards.iter().filter(move |s| s.rank == rank)
    }

    /// Bytes of all shards as the caller gave them.
    pub fn raw_size(&self) -> u64 {
        self.shards.iter().map(|s| s.raw_size).sum()
    }

    fn shard_names(&self) -> String {
        let names: Vec<_> = self
            .shards
            .iter()
            .map(|s| format!("{}:{}", s.rank, s.name))
            .collect();
        names.join(", ")
    }

    pub(crate) fn parse(data: &[u8], key: &str) -> Result<Self> {
        let m: Self = parse_json(data, "manifest", key)?;
        check_format(&m.format, m.version, key)?;
        Ok(m)
    }
}

/// What `latest` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub format: String,
    pub version: u32,
    pub step: u64,
    /// The manifest's key, relative to the root.
    pub manifest: String,
}

/// What a rank writes when all its shards are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RankMarker {
    pub format: String,
    pub version: u32,
    pub rank: u32,
    pub save_id: String,
    pub shards: Vec<ShardEntry>,
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    data: &[u8],
    what: &str,
    key: &str,
) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| {
        Error::new(ErrorKind::Other, format!("{what} {key} is not valid: {e}")).with_source(e)
    })
}

pub(crate) fn check_format(format: &str, version: u32, key: &str) -> Result<()> {
    if format != FORMAT || version > FORMAT_VERSION {
        return Err(Error::not_supported(format!(
            "{key} is format '{format}' version {version}; this build reads '{FORMAT}' \
             up to version {FORMAT_VERSION}"
        )));
    }
    Ok(())
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> bytes::Bytes {
    // Serialising these plain structs cannot fail.
    bytes::Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

/// Key layout, relative to the root.
pub(crate) mod layout {
    pub const POINTER: &str = "latest";
    pub const MANIFESTS: &str = "manifests/";
    pub const NAMED: &str = "named/";

    pub fn manifest(step: u64) -> String {
        format!("{MANIFESTS}{step:020}.json")
    }

    /// The step of a manifest key, if it is one.
    pub fn step_of(rel: &str) -> Option<u64> {
        let digits = rel.strip_prefix(MANIFESTS)?.strip_suffix(".json")?;
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }

    pub fn data_prefix(step: u64, save_id: &str) -> String {
        format!("data/{step:020}-{save_id}/")
    }

    pub fn part(data_prefix: &str, rank: u32, name: &str, part: usize) -> String {
        format!("{data_prefix}rank-{rank:05}/{name}.part-{part:05}")
    }

    pub fn marker(data_prefix: &str, rank: u32) -> String {
        format!("{data_prefix}rank-{rank:05}.done.json")
    }
}

/// Shard names and save ids become parts of keys: keep them to a safe alphabet.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "{what} '{name}' must be 1 to 200 of A-Z a-z 0-9 _ - . and not start with '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keys_sort_by_step_and_parse_back() {
        let (a, b) = (layout::manifest(9), layout::manifest(10));
        assert!(a < b);
        assert_eq!(layout::step_of(&b), Some(10));
        assert_eq!(layout::step_of("manifests/12.json"), None);
        assert_eq!(layout::step_of("data/x"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("shard", "model-0.opt_state").is_ok());
        for bad in ["", "a/b", ".hidden", "sp ace"] {
            assert!(check_name("shard", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn newer_formats_are_refused_clearly() {
        let e = check_format(FORMAT, FORMAT_VERSION + 1, "k").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert!(check_format("other", 1, "k").is_err());
    }
}
