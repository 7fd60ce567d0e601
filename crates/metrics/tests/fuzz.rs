//! Fuzzing of the op-log reader with bounded random inputs (proptest; the coverage-guided
//! target is in fuzz/, see docs/RELIABILITY.md): arbitrary bytes, arbitrary lines after a
//! valid header, and damaged copies of a real log (plain and zstd) never panic; they parse
//! or fail with an error naming the line, and what parses writes back as a log that parses
//! the same. The checks are the crate's `fuzzing` module, which the cargo-fuzz target runs
//! too. `S3DLIO_FUZZ_CASES` sets the inputs per property (default 2,000).

use proptest::prelude::*;
use s3dlio_metrics::{fuzzing, parse_op_log};

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

const HEADER: &str = "idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror\tstart\tfirst_byte\tend\tduration_ns\n";
const ROW: &str = "0\t1\tGET\tc1\t1\t4096\thttp://127.0.0.1:9000\ts3://b/k\t\t2026-01-02T03:04:05.123456789Z\t2026-01-02T03:04:05.223456789Z\t2026-01-02T03:04:05.323456789Z\t200000000\n";

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,20}",
        Just("2026-01-02T03:04:05Z".to_owned()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        "\\PC{0,30}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        fuzzing::check_op_log(&data);
    }

    #[test]
    fn arbitrary_rows_parse_or_name_their_line(rows in prop::collection::vec(prop::collection::vec(field(), 0..16), 0..6)) {
        fuzzing::check_rows(&rows);
    }

    #[test]
    fn damaged_logs_never_panic(at in any::<prop::sample::Index>(), flip in 1u8..=255, zstd_log in any::<bool>()) {
        let plain = format!("{HEADER}{ROW}{ROW}# a comment\n{ROW}");
        prop_assert_eq!(parse_op_log(plain.as_bytes()).unwrap().rows.len(), 3);
        let mut data = if zstd_log {
            zstd::encode_all(plain.as_bytes(), 1).unwrap()
        } else {
            plain.into_bytes()
        };
        let i = at.index(data.len());
        data[i] ^= flip;
        fuzzing::check_op_log(&data);
    }
}
