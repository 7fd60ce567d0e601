//! Write, list, read back and delete objects through `file://` URIs.
//!
//! ```text
//! cargo run -p s3dlio-store-fs --example quickstart [DIR] [--keep]
//! ```
//!
//! DIR defaults to a new directory under the system's temporary directory. Objects are
//! deleted at the end unless `--keep` is given.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use s3dlio_store_core::{ByteRange, ListItem, ListOptions, ObjectStoreExt, PutOptions, Registry};

const OBJECTS: usize = 100;
const OBJECT_SIZE: usize = 1024 * 1024;
const CHUNK: usize = 256 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// Deterministic content of object `i`, so reads can be verified.
fn content(i: usize, len: usize) -> Bytes {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut keep = false;
    let mut dir_arg = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("usage: quickstart [DIR] [--keep]");
                return Ok(());
            }
            _ if dir_arg.is_none() => dir_arg = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}").into()),
        }
    }
    let own_dir = dir_arg.is_none();
    let dir = dir_arg.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("s3dlio-quickstart-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let base = format!(
        "file://{}/",
        dir.to_str().ok_or("the directory's path is not UTF-8")?
    );
    println!("s3dlio file:// quickstart in {base}");

    // Facades register the schemes they support, then resolve URIs to a store and a key.
    let mut registry = Registry::new();
    s3dlio_store_fs::register(&mut registry);
    let (store, prefix) = registry.resolve(&base).await?;

    // 100 objects of 1 MiB through streaming writers, eight at a time. The contents are
    // made first so that the timings measure I/O only.
    let contents: Vec<Bytes> = (0..OBJECTS).map(|i| content(i, OBJECT_SIZE)).collect();
    let started = Instant::now();
    stream::iter(0..OBJECTS)
        .map(|i| {
            let (store, key) = (store.clone(), format!("{prefix}data/obj-{i:04}.bin"));
            let data = contents[i].clone();
            async move {
                let mut writer = store.writer(&key, PutOptions::default()).await?;
                for chunk in data.chunks(CHUNK) {
                    writer.write(data.slice_ref(chunk)).await?;
                }
                writer.complete().await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let total = (OBJECTS * OBJECT_SIZE) as f64 / MIB;
    println!(
        "wrote {OBJECTS} objects of 1 MiB with streaming writers: {secs:.2} s, {:.0} MiB/s",
        total / secs
    );

    // A few small objects in one request each.
    let small = [
        "small/readme.txt",
        "small/config.json",
        "small/nested/notes.md",
    ];
    for name in small {
        store
            .put_bytes(
                &format!("{prefix}{name}"),
                Bytes::from(format!("contents of {name}\n")),
            )
            .await?;
    }
    println!("put {} small objects", small.len());

    // Listings: every object, then one level with deeper keys folded into prefixes.
    let objects = store.list_objects(&prefix).await?;
    let bytes: u64 = objects.iter().map(|m| m.size).sum();
    println!(
        "listed {} objects, {:.1} MiB, recursively",
        objects.len(),
        bytes as f64 / MIB
    );
    let top: Vec<String> = store
        .list(&prefix, ListOptions::delimited())
        .map_ok(|item| match item {
            ListItem::Prefix(p) => p[prefix.len()..].to_owned(),
            ListItem::Object(m) => m.key[prefix.len()..].to_owned(),
        })
        .try_collect()
        .await?;
    println!("top level: {}", top.join(", "));

    // Read everything back and verify it.
    let mut secs = 0.0;
    let mut verified = 0;
    for (i, want) in contents.iter().enumerate() {
        let started = Instant::now();
        let got = store
            .get_bytes(&format!("{prefix}data/obj-{i:04}.bin"))
            .await?;
        secs += started.elapsed().as_secs_f64();
        if got != want {
            return Err(format!("object {i} read back differs").into());
        }
        verified += got.len();
    }
    println!(
        "read back {:.1} MiB, verified: {secs:.2} s, {:.0} MiB/s",
        verified as f64 / MIB,
        verified as f64 / MIB / secs
    );
    let key = format!("{prefix}data/obj-0042.bin");
    let part = store.get_range(&key, ByteRange::from(1000..2000)).await?;
    if part != contents[42].slice(1000..2000) {
        return Err("ranged read differs".into());
    }
    println!(
        "ranged read of bytes 1000..2000 of {} verified",
        store.uri_of(&key)
    );

    if keep {
        println!("kept everything in {}", dir.display());
    } else {
        let deleted = store.delete_prefix(&prefix).await?;
        // The store leaves directories in place; remove the ones this example made.
        if own_dir {
            std::fs::remove_dir_all(&dir)?;
        } else {
            for sub in ["data", "small/nested", "small"] {
                let _ = std::fs::remove_dir(dir.join(sub));
            }
        }
        println!("deleted {deleted} objects");
    }
    Ok(())
}
