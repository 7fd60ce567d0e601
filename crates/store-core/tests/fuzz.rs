//! Fuzzing of the URI parser and the size, count and duration parsers with bounded random
//! inputs (proptest; see docs/RELIABILITY.md for why not cargo-fuzz): arbitrary strings
//! never panic, and well-formed inputs mean what they say. `S3DLIO_FUZZ_CASES` sets the
//! inputs per property (default 2,000; `cargo xtask fuzz` runs many more).

use proptest::prelude::*;
use s3dlio_store_core::retry::parse_duration;
use s3dlio_store_core::{
    parse_count, parse_size, validate_key, ByteRange, ObjectUri, ParseOptions, Scheme,
};

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
        let _ = ObjectUri::parse_with(&s, &ParseOptions::default());
        let _ = ObjectUri::parse_path_or_uri(&s);
    }

    #[test]
    fn parsed_uris_print_and_parse_back_the_same(s in uri_like()) {
        let opts = ParseOptions::default();
        if let Ok(u) = ObjectUri::parse_with(&s, &opts) {
            let again = ObjectUri::parse_with(&u.to_string(), &opts);
            prop_assert!(again.is_ok(), "{s:?} -> {u} does not parse: {:?}", again.err());
            let again = again.unwrap();
            prop_assert_eq!(&again, &u, "{:?} -> {} -> {}", s, u, again);
            // Keys are taken as written; one no backend can store fails every operation at
            // once (the parser does not judge keys: a prefix may be empty).
            if u.key.contains('\0') || u.key.len() > 1024 {
                prop_assert!(validate_key(&u.key).is_err(), "{:?}", u.key);
            }
        }
    }

    #[test]
    fn s3_uris_keep_bucket_and_key(bucket in "[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]", key in "[^\0]{0,100}") {
        let u = ObjectUri::parse(&format!("s3://{bucket}/{key}"));
        if let Ok(u) = u {
            prop_assert_eq!(u.scheme, Scheme::S3);
            prop_assert_eq!(&u.container, &bucket);
            prop_assert_eq!(&u.key, &key);
        }
    }

    #[test]
    fn size_count_and_duration_parsers_never_panic(s in "\\PC{0,24}") {
        let _ = parse_size(&s);
        let _ = parse_count(&s);
        let _ = parse_duration(&s);
    }

    #[test]
    fn sizes_with_units_mean_what_they_say(n in 0u64..1_000_000, unit in 0usize..9) {
        let (suffix, mult): (&str, u64) = [
            ("", 1), ("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
            ("KB", 1_000), ("MB", 1_000_000), ("k", 1_000), ("GB", 1_000_000_000),
        ][unit];
        let s = format!("{n}{suffix}");
        match parse_size(&s) {
            Ok(v) => prop_assert_eq!(v, n * mult, "{}", s),
            // A spelling this parser does not take must say so, not guess.
            Err(e) => prop_assert_eq!(e.kind(), s3dlio_store_core::ErrorKind::InvalidInput),
        }
        prop_assert_eq!(parse_count(&n.to_string()).unwrap(), n);
    }

    #[test]
    fn byte_ranges_resolve_inside_the_object(start in 0u64..10_000, len in 0u64..10_000, size in 0u64..10_000, suffix in 0u64..20_000) {
        for r in [
            ByteRange::Bounded { start, end: start.saturating_add(len) },
            ByteRange::From(start),
            ByteRange::Suffix(suffix),
        ] {
            if let Ok(x) = r.resolve(size) {
                prop_assert!(x.start <= x.end && x.end <= size, "{r:?} of {size}: {x:?}");
                prop_assert!(x.start < x.end || size == 0 || matches!(r, ByteRange::Suffix(_)));
            }
        }
    }
}
