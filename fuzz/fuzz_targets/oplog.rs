//! The op-log reader: any bytes (plain or zstd), as they are and after a valid header,
//! never panic, and a log that reads writes back as one that reads the same; text rows
//! after a header read or fail naming their line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3dlio_metrics::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::check_op_log(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let rows: Vec<Vec<String>> = text
            .split('\n')
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect();
        fuzzing::check_rows(&rows);
    }
});
