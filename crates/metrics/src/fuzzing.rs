//! The invariants of the op-log reader, shared by the proptest properties
//! (`tests/fuzz.rs`) and the cargo-fuzz target (`fuzz/`): each check panics, naming the
//! input, when its property does not hold. Only with the `fuzzing` feature.

use std::fmt::Write as _;

use crate::{parse_op_log, OpLogFile, HEADER};

/// Any bytes, as they are and after an op-log header: the reader never panics, and a log
/// it reads writes back (header, comments, rows with every time in the writer's form) as
/// a log that reads the same.
pub fn check_op_log(data: &[u8]) {
    round_trip(data);
    let mut with_header = format!("{HEADER}\n").into_bytes();
    with_header.extend_from_slice(data);
    round_trip(&with_header);
}

fn round_trip(data: &[u8]) {
    let Ok(log) = parse_op_log(data) else {
        return;
    };
    let text = write(&log);
    let data = String::from_utf8_lossy(data);
    match parse_op_log(text.as_bytes()) {
        Ok(again) => assert_eq!(again, log, "{data:?} read, written as {text:?}"),
        Err(e) => panic!("{data:?} read, written as {text:?}, which does not read: {e}"),
    }
}

/// Rows of tab-separated fields after a valid header either read or fail with an error
/// naming the line.
pub fn check_rows(rows: &[Vec<String>]) {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.join("\t"));
        text.push('\n');
    }
    match parse_op_log(text.as_bytes()) {
        Ok(log) => {
            let again = parse_op_log(write(&log).as_bytes()).ok();
            assert_eq!(again.as_ref(), Some(&log), "{text:?}");
        }
        Err(e) => assert!(e.to_string().starts_with("line "), "{text:?}: {e}"),
    }
}

/// `log` as op-log text: the header, its comments, then its rows.
pub fn write(log: &OpLogFile) -> String {
    let mut out = format!("{HEADER}\n");
    for c in &log.comments {
        let _ = writeln!(out, "# {c}");
    }
    for r in &log.rows {
        let first_byte = r.first_byte.map(|t| t.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{first_byte}\t{}\t{}",
            r.idx,
            r.thread,
            r.op,
            r.client_id,
            r.n_objects,
            r.bytes,
            r.endpoint,
            r.file,
            r.error,
            r.start,
            r.end,
            r.duration_ns
        );
    }
    out
}
