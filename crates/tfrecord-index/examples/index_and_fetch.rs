//! Write a TFRecord file, index it (DALI index beside it), and read shuffled batches of
//! records of one rank's shard through the `file://` store with coalesced ranged GETs.
//!
//! ```text
//! cargo run -p s3dlio-tfrecord-index --example index_and_fetch [DIR]
//! ```
//!
//! With an `s3://` URI and `s3dlio_store_s3::register` the same code reads from S3.

use std::io::BufWriter;

use futures::StreamExt;
use s3dlio_store_core::Registry;
use s3dlio_tfrecord_index::{
    create_index, default_index_path, epoch_order, index_uri, read_index_file, IndexOptions,
    RecordReader, TfRecordWriter,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("tfrecord-example-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("train.tfrecord");

    // 1000 records of 100..2100 bytes.
    let mut w = TfRecordWriter::new(BufWriter::new(std::fs::File::create(&path)?));
    for i in 0..1000usize {
        let data = vec![(i % 251) as u8; 100 + (i * 37) % 2000];
        w.write_record(&data)?;
    }
    w.flush()?;
    drop(w);

    // The DALI index beside the file (`train.tfrecord.idx`), every CRC checked.
    let entries = create_index(&path, None, IndexOptions::verify())?;
    let idx = default_index_path(&path);
    println!(
        "{}: {} records, index {}",
        path.display(),
        entries.len(),
        idx.display()
    );
    assert_eq!(read_index_file(&idx)?, entries);

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut registry = Registry::new();
        s3dlio_store_fs::register(&mut registry);
        let uri = format!("file://{}", path.display());
        // The same index through the store (a streaming GET on object stores).
        assert_eq!(
            index_uri(&registry, &uri, IndexOptions::default()).await?,
            entries
        );

        // Rank 0 of 4: a quarter of the records, shuffled by the epoch's seed, in batches
        // of 32, two batches fetched ahead.
        let reader = RecordReader::open(&registry, &uri, entries).await?;
        let order = epoch_order(reader.len(), Some(2024), 0, 4)?;
        let spans: usize = order
            .chunks(32)
            .map(|b| reader.plan(b).map_or(0, |p| p.len()))
            .sum();
        let mut batches = std::pin::pin!(reader.batches(&order, 32, 2));
        let (mut records, mut bytes) = (0, 0);
        while let Some(batch) = batches.next().await {
            for r in batch? {
                records += 1;
                bytes += r.len();
            }
        }
        println!("rank 0 of 4 read {records} records ({bytes} bytes) with {spans} ranged GETs");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
