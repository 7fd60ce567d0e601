//! Fuzzing of the TFRecord parser and the DALI index reader with bounded random inputs
//! (proptest; see docs/RELIABILITY.md): arbitrary bytes fed in arbitrary chunks never
//! panic and either index or name the offset of the problem; well-formed files index to
//! exactly the records written, however they are chunked, and damage to them is always
//! caught. `S3DLIO_FUZZ_CASES` sets the inputs per property (default 2,000).

use proptest::prelude::*;
use s3dlio_tfrecord_index::{read_index, IndexEntry, Indexer, TfRecordWriter};

fn config() -> ProptestConfig {
    let cases = std::env::var("S3DLIO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Feed `data` in chunks whose sizes cycle through `cuts`, then finish.
fn index(data: &[u8], cuts: &[usize], verify: bool) -> Result<Vec<IndexEntry>, String> {
    let mut ix = Indexer::new(verify);
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = cuts[i % cuts.len()].clamp(1, data.len() - at);
        ix.feed(&data[at..at + n]).map_err(|e| e.to_string())?;
        at += n;
        i += 1;
    }
    ix.finish().map_err(|e| e.to_string())
}

fn records() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12)
}

fn write(recs: &[Vec<u8>]) -> (Vec<u8>, Vec<IndexEntry>) {
    let mut w = TfRecordWriter::new(Vec::new());
    let entries = recs.iter().map(|r| w.write_record(r).unwrap()).collect();
    w.flush().unwrap();
    (w.into_inner(), entries)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048),
                                   cuts in prop::collection::vec(1usize..64, 1..8),
                                   verify in any::<bool>()) {
        let _ = index(&data, &cuts, verify);
    }

    #[test]
    fn written_records_index_exactly_in_any_chunking(recs in records(),
                                                     cuts in prop::collection::vec(1usize..97, 1..8)) {
        let (file, entries) = write(&recs);
        prop_assert_eq!(index(&file, &cuts, true).unwrap(), entries);
    }

    #[test]
    fn damage_is_always_caught(recs in records().prop_filter("non-empty", |r| !r.is_empty()),
                               at in any::<prop::sample::Index>(), flip in 1u8..=255,
                               cuts in prop::collection::vec(1usize..97, 1..8)) {
        let (mut file, entries) = write(&recs);
        let i = at.index(file.len());
        file[i] ^= flip;
        // With data CRCs checked, any flipped byte is an error, never other records.
        let r = index(&file, &cuts, true);
        prop_assert!(r.is_err(), "byte {i} flipped yet indexed: {:?} (was {:?})", r, entries);
        // A file cut short is an error too.
        let r = index(&file[..i], &cuts, false);
        if i > 0 && !entries.iter().any(|e| e.offset + e.size == i as u64) {
            prop_assert!(r.is_err(), "cut at {i} yet indexed");
        }
    }

    #[test]
    fn index_reader_never_panics(text in "[0-9 \\t\\n-]{0,200}|\\PC{0,100}") {
        let _ = read_index(text.as_bytes());
    }
}
