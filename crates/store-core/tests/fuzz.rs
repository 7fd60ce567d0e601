//! Fuzzing of the URI parser and the size, count and duration parsers with bounded random
//! inputs (proptest; the coverage-guided targets are in fuzz/, see docs/RELIABILITY.md):
//! arbitrary strings never panic, and well-formed inputs mean what they say. The checks
//! are the crate's `fuzzing` module, which the cargo-fuzz targets run too.
//! `S3DLIO_FUZZ_CASES` sets the inputs per property (default 2,000; `cargo xtask fuzz`
//! runs many more).

use proptest::prelude::*;
use s3dlio_store_core::fuzzing;

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

/// Strings built from the pieces URIs are made of, so the parser's deeper branches are
/// reached far more often than by uniform characters.
fn uri_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("s3://".to_owned()),
        Just("az://".to_owned()),
        Just("file://".to_owned()),
        Just("direct://".to_owned()),
        Just("https://".to_owned()),
        Just(".blob.core.windows.net".to_owned()),
        Just("localhost".to_owned()),
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just("..".to_owned()),
        Just("%".to_owned()),
        Just(":".to_owned()),
        Just("\0".to_owned()),
        "[a-z0-9.-]{0,12}",
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn uri_parser_never_panics(s in "\\PC{0,80}") {
        fuzzing::check_uri(&s);
    }

    #[test]
    fn parsed_uris_print_and_parse_back_the_same(s in uri_like()) {
        fuzzing::check_uri(&s);
    }

    #[test]
    fn s3_uris_keep_bucket_and_key(bucket in "[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]", key in "[^\0]{0,100}") {
        fuzzing::check_s3_uri(&bucket, &key);
    }

    #[test]
    fn size_count_and_duration_parsers_never_panic(s in "\\PC{0,24}") {
        fuzzing::check_size_count_duration(&s);
    }

    #[test]
    fn sizes_with_units_mean_what_they_say(n in 0u64..1_000_000, unit in 0usize..9) {
        fuzzing::check_size_units(n, unit);
    }

    #[test]
    fn byte_ranges_resolve_inside_the_object(start in 0u64..10_000, len in 0u64..10_000, size in 0u64..10_000, suffix in 0u64..20_000) {
        fuzzing::check_byte_ranges(start, len, size, suffix);
    }
}
