//! A tour of the checkpoint store on `file://`: two ranks save two steps, the latest is
//! loaded and verified, old steps are pruned, and a named checkpoint is saved and loaded.
//!
//! ```text
//! cargo run -p s3dlio-checkpoint --example checkpoint_basic [-- /tmp/some/dir]
//! ```

use bytes::Bytes;
use s3dlio_checkpoint::{CheckpointStore, SaveOptions};
use s3dlio_store_core::Registry;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "{}/s3dlio-ckpt-{}",
            std::env::temp_dir().display(),
            std::process::id()
        )
    });
    let mut registry = Registry::new();
    s3dlio_store_fs::register(&mut registry);
    let ck = CheckpointStore::open(&registry, &format!("file://{dir}/ckpt/")).await?;

    for step in [100u64, 200] {
        // Both ranks of one save share its id (in a real job: broadcast from rank 0).
        let opts = SaveOptions::new(step)
            .epoch(step / 100)
            .framework("pytorch")
            .distributed(2, format!("demo-{step}"))
            .metadata("lr", "3e-4");
        let ranks: Vec<_> = (0..2u32)
            .map(|rank| {
                let (ck, opts) = (ck.clone(), opts.clone());
                tokio::spawn(async move {
                    let saver = ck.rank_saver(opts, rank)?;
                    let weights = Bytes::from(vec![rank as u8; 1 << 20]);
                    saver.put_shard("model", weights).await?;
                    saver.finish().await // rank 0 publishes once rank 1 is done
                })
            })
            .collect();
        for r in ranks {
            if let Some(m) = r.await?? {
                println!("published step {} ({} shards)", m.step, m.shards.len());
            }
        }
    }

    let m = ck.latest().await?.ok_or("no checkpoint")?;
    let shard = ck.load_shard(&m, 1, "model").await?; // CRC32C checked
    println!(
        "latest: step {} epoch {:?}, rank 1 shard {} bytes",
        m.step,
        m.epoch,
        shard.len()
    );
    println!(
        "steps: {:?}; pruned {:?}",
        ck.list().await?,
        ck.keep_last(1).await?
    );

    ck.save("model_state", Bytes::from_static(b"tiny state"))
        .await?;
    println!("named: {:?}", ck.load("model_state").await?);
    println!("files under {dir}");
    Ok(())
}
