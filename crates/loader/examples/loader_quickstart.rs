//! The loader on `file://`, start to finish: write a small dataset into a temporary
//! directory, then read two shuffled epochs as batches, as two ranks of a job would.
//!
//! ```text
//! cargo run -p s3dlio-loader --example loader_quickstart
//! ```

use futures::StreamExt;
use s3dlio_loader::{Dataset, Loader, LoaderOptions, Remainder};
use s3dlio_store_core::{ObjectStoreExt, Registry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let prefix = format!("file://{}/train/", dir.path().display());

    let mut registry = Registry::new();
    s3dlio_store_fs::register(&mut registry);
    let (store, key) = registry.resolve(&prefix).await?;
    for i in 0..50u32 {
        let sample = format!("sample {i}").into_bytes();
        store
            .put_bytes(&format!("{key}{i:04}.txt"), sample.into())
            .await?;
    }

    for rank in 0..2 {
        let opts = LoaderOptions {
            batch_size: 8,
            shuffle: true,
            seed: 42,
            rank: Some(rank),
            world_size: Some(2),
            remainder: Remainder::Pad,
            ordered: false,
            ..LoaderOptions::default()
        };
        let loader = Loader::new(Dataset::from_uri(&registry, &prefix).await?, opts)?;
        for epoch in 0..2 {
            let mut batches = loader.epoch(epoch);
            let mut sizes = Vec::new();
            while let Some(batch) = batches.next().await {
                sizes.push(batch?.len());
            }
            let stats = batches.stats();
            println!(
                "rank {rank} epoch {epoch}: batches {sizes:?}, {} samples, {} bytes",
                stats.samples, stats.bytes
            );
        }
    }
    Ok(())
}
