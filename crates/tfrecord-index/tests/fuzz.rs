//! Fuzzing of the TFRecord parser and the DALI index reader with bounded random inputs
//! (proptest; the coverage-guided target is in fuzz/, see docs/RELIABILITY.md): arbitrary
//! bytes fed in arbitrary chunks never panic and index the same in any chunking; well-formed
//! files index to exactly the records written, however they are chunked, and damage to
//! them is always caught. The checks are the crate's `fuzzing` module, which the cargo-fuzz
//! target runs too. `S3DLIO_FUZZ_CASES` sets the inputs per property (default 2,000).

use proptest::prelude::*;
use s3dlio_tfrecord_index::fuzzing;

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

fn records() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048),
                                   cuts in prop::collection::vec(1usize..64, 1..8),
                                   verify in any::<bool>()) {
        fuzzing::check_arbitrary_bytes(&data, &cuts, verify);
    }

    #[test]
    fn any_lengths_in_valid_headers_never_panic(parts in prop::collection::vec(
                                                    (prop_oneof![0u64..400, (u64::MAX - 40)..=u64::MAX, any::<u64>()],
                                                     prop::collection::vec(any::<u8>(), 0..300)), 0..6),
                                                cuts in prop::collection::vec(1usize..64, 1..8),
                                                verify in any::<bool>()) {
        fuzzing::check_framed(&parts, &cuts, verify);
    }

    #[test]
    fn written_records_index_exactly_in_any_chunking(recs in records(),
                                                     cuts in prop::collection::vec(1usize..97, 1..8)) {
        fuzzing::check_written_records(&recs, &cuts);
    }

    #[test]
    fn damage_is_always_caught(recs in records().prop_filter("non-empty", |r| !r.is_empty()),
                               at in any::<usize>(), flip in 1u8..=255,
                               cuts in prop::collection::vec(1usize..97, 1..8)) {
        fuzzing::check_damage(&recs, at, flip, &cuts);
    }

    #[test]
    fn index_reader_never_panics(text in "[0-9 \\t\\n-]{0,200}|\\PC{0,100}") {
        fuzzing::check_index_reader(text.as_bytes());
    }
}
