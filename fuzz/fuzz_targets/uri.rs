//! The URI parser: any text never panics, a URI that parses prints as one that parses back
//! the same, a key no backend can store fails validation, and `s3://bucket/key` keeps its
//! bucket and key (the input split at its first newline).
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3dlio_store_core::fuzzing;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    fuzzing::check_uri(&s);
    if let Some((bucket, key)) = s.split_once('\n') {
        fuzzing::check_s3_uri(bucket, key);
    }
});
