//! The size, count and duration parsers: any text never panics and what parses is a number
//! that parses back; the first bytes as numbers also drive the "units mean what they say"
//! and byte-range properties.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3dlio_fuzz::Input;
use s3dlio_store_core::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::check_size_count_duration(&String::from_utf8_lossy(data));
    let mut i = Input(data);
    let (n, unit) = (i.u64(), i.byte());
    fuzzing::check_size_units(n, usize::from(unit));
    let (start, len, size, suffix) = (i.u64(), i.u64(), i.u64(), i.u64());
    fuzzing::check_byte_ranges(start, len, size, suffix);
});
