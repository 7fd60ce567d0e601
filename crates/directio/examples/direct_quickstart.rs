//! direct:// in a few lines: write objects of awkward sizes with O_DIRECT, list them, read
//! them back whole, by unaligned range and streamed, check every byte, and clean up.
//!
//! ```text
//! cargo run --release -p s3dlio-directio --example direct_quickstart -- [DIR]
//! ```
//!
//! DIR must be on a file system that accepts O_DIRECT (a local disk; not tmpfs before
//! Linux 6.6, not ramfs); the default is `/var/tmp`.

use bytes::Bytes;
use futures::TryStreamExt;
use s3dlio_directio::{filesystem_of, DirectStore};
use s3dlio_store_core::{ByteRange, GetOptions, ObjectStore, ObjectStoreExt};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/var/tmp".to_owned());
    let dir = std::path::Path::new(&base).join(format!("s3dlio-direct-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fs = filesystem_of(&dir).unwrap_or_default();
    println!("store in {} ({fs})", dir.display());
    let store = DirectStore::new(&dir)?;

    let sizes = [0usize, 1, 4095, 4097, (8 << 20) + 3];
    for (i, size) in sizes.iter().enumerate() {
        let data: Bytes = (0..*size)
            .map(|b| (b * 31 + i) as u8)
            .collect::<Vec<_>>()
            .into();
        store.put_bytes(&format!("demo/obj-{i}"), data).await?;
    }
    for meta in store.list_objects("demo/").await? {
        let i: usize = meta.key.rsplit('-').next().unwrap_or("0").parse()?;
        let want: Vec<u8> = (0..sizes[i]).map(|b| (b * 31 + i) as u8).collect();
        let whole = store.get_bytes(&meta.key).await?;
        assert_eq!(whole[..], want[..], "{}", meta.key);
        if meta.size > 10 {
            let r = store
                .get_range(&meta.key, ByteRange::from(3..meta.size - 2))
                .await?;
            assert_eq!(r[..], want[3..want.len() - 2]);
        }
        let chunks: Vec<Bytes> = store
            .get(&meta.key, GetOptions::default())
            .await?
            .into_stream()
            .try_collect()
            .await?;
        assert_eq!(chunks.concat(), want);
        println!("{:<12} {:>9} bytes  ok", meta.key, meta.size);
    }
    store.delete_prefix("demo/").await?;
    std::fs::remove_dir_all(&dir)?;
    println!("all objects round-tripped; {} cleaned up", dir.display());
    Ok(())
}
