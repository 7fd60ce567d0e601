//! The invariants of the URI, size, count, duration and byte-range parsers, shared by the
//! proptest properties (`tests/fuzz.rs`) and the cargo-fuzz targets (`fuzz/`): each check
//! panics, naming the input, when its property does not hold, and returns quietly
//! otherwise. Only with the `fuzzing` feature.

use std::time::Duration;

use crate::retry::parse_duration;
use crate::{parse_count, parse_size, validate_key, ByteRange, ErrorKind, ObjectUri, ParseOptions};

/// Any string: the parsers never panic, and a URI that parses prints as a URI that parses
/// back to the same value; a key no backend can store fails [`validate_key`].
pub fn check_uri(s: &str) {
    let opts = ParseOptions::default();
    let _ = ObjectUri::parse_path_or_uri(s);
    let Ok(u) = ObjectUri::parse_with(s, &opts) else {
        return;
    };
    let printed = u.to_string();
    match ObjectUri::parse_with(&printed, &opts) {
        Ok(again) => assert_eq!(again, u, "{s:?} -> {printed:?} -> {again}"),
        Err(e) => panic!("{s:?} parses as {printed:?}, which does not parse: {e}"),
    }
    // Keys are taken as written; one no backend can store fails every operation at once
    // (the parser does not judge keys: a prefix may be empty).
    if u.key.contains('\0') || u.key.len() > 1024 {
        assert!(
            validate_key(&u.key).is_err(),
            "{:?} passes validate_key",
            u.key
        );
    }
}

/// `s3://{bucket}/{key}` keeps the bucket and the key as written, for a bucket of 3 to 42
/// characters `[a-z0-9.-]` starting and ending with a letter or digit and a key without
/// NUL (other pairs are not checked).
pub fn check_s3_uri(bucket: &str, key: &str) {
    let b = bucket.as_bytes();
    let name = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bucket_like = (3..=42).contains(&b.len())
        && b.iter().all(|c| name(c) || *c == b'.' || *c == b'-')
        && name(&b[0])
        && name(&b[b.len() - 1]);
    if !bucket_like || key.contains('\0') {
        return;
    }
    if let Ok(u) = ObjectUri::parse(&format!("s3://{bucket}/{key}")) {
        assert_eq!(u.scheme, crate::Scheme::S3);
        assert_eq!(u.container, bucket);
        assert_eq!(u.key, key);
    }
}

/// Any string: the size, count and duration parsers never panic; a size or count that
/// parses is a number that prints as plain digits which parse back to it, and a duration
/// that parses is finite and at most 10^9 seconds.
pub fn check_size_count_duration(s: &str) {
    if let Ok(v) = parse_size(s) {
        assert_eq!(
            parse_size(&v.to_string()).ok(),
            Some(v),
            "size {s:?} -> {v}"
        );
    }
    if let Ok(v) = parse_count(s) {
        assert_eq!(
            parse_count(&v.to_string()).ok(),
            Some(v),
            "count {s:?} -> {v}"
        );
    }
    if let Ok(d) = parse_duration(s) {
        assert!(
            d <= Duration::from_secs(1_000_000_000),
            "duration {s:?} -> {d:?}"
        );
    }
}

/// `{n}{unit}` for the unit at `unit % 9` of a fixed list is `n` times the unit's value, or
/// an `InvalidInput` error (a spelling the parser does not take must say so, not guess);
/// `n` alone is the count `n`.
pub fn check_size_units(n: u64, unit: usize) {
    let (suffix, mult): (&str, u64) = [
        ("", 1),
        ("B", 1),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("k", 1_000),
        ("GB", 1_000_000_000),
    ][unit % 9];
    let s = format!("{n}{suffix}");
    match (parse_size(&s), n.checked_mul(mult)) {
        (Ok(v), Some(want)) => assert_eq!(v, want, "{s}"),
        (Ok(v), None) => panic!("{s} overflows u64 yet parses as {v}"),
        (Err(e), _) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{s}: {e}"),
    }
    assert_eq!(parse_count(&n.to_string()).ok(), Some(n), "count {n}");
}

/// Bounded, open and suffix ranges resolve inside an object of `size` bytes, and only a
/// suffix range may resolve to nothing in a non-empty object.
pub fn check_byte_ranges(start: u64, len: u64, size: u64, suffix: u64) {
    for r in [
        ByteRange::Bounded {
            start,
            end: start.saturating_add(len),
        },
        ByteRange::From(start),
        ByteRange::Suffix(suffix),
    ] {
        if let Ok(x) = r.resolve(size) {
            assert!(x.start <= x.end && x.end <= size, "{r:?} of {size}: {x:?}");
            assert!(
                x.start < x.end || size == 0 || matches!(r, ByteRange::Suffix(_)),
                "{r:?} of {size}: empty {x:?}"
            );
        }
    }
}
