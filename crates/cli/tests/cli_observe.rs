//! `--op-log`, `--metrics` and `oplog stats` on file://: the log holds exactly the
//! command's operations.

mod common;

use std::path::Path;

use common::*;

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

type Row = (String, u64, u64, String, bool);

fn r(op: &str, n: u64, bytes: u64, file: &str, failed: bool) -> Row {
    (op.into(), n, bytes, file.into(), failed)
}

#[test]
fn op_log_rows_match_each_commands_operations() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    let data = uri(&d);
    let log = |name: &str| t.path().join(name);
    let obj = |i: u64| format!("{data}/object_{i}_of_3.dat");

    run(&[
        "--op-log",
        log("put.zst").to_str().unwrap(),
        "put",
        &format!("{data}/"),
        "-n",
        "3",
        "-s",
        "10KiB",
    ])
    .ok();
    assert_eq!(
        sorted(oplog_rows(&log("put.zst"))),
        (0..3)
            .map(|i| r("PUT", 1, 10_240, &obj(i), false))
            .collect::<Vec<_>>()
    );

    run(&[
        "--op-log",
        log("get.zst").to_str().unwrap(),
        "get",
        "-r",
        &format!("{data}/"),
    ])
    .ok();
    let rows = oplog_rows(&log("get.zst"));
    assert_eq!(rows[0], r("LIST", 3, 0, &format!("{data}/"), false));
    assert_eq!(
        sorted(rows[1..].to_vec()),
        (0..3)
            .map(|i| r("GET", 1, 10_240, &obj(i), false))
            .collect::<Vec<_>>()
    );

    // Within one store `cp` is a server-side copy, after a HEAD for the size.
    run(&[
        "--op-log",
        log("cp.zst").to_str().unwrap(),
        "cp",
        &obj(0),
        &format!("{data}/copy.dat"),
    ])
    .ok();
    assert_eq!(
        oplog_rows(&log("cp.zst")),
        vec![
            r("HEAD", 1, 0, &obj(0), false),
            r("COPY", 1, 10_240, &obj(0), false)
        ]
    );

    // A failing command still leaves its log, with the failure in it.
    run(&[
        "--op-log",
        log("fail.zst").to_str().unwrap(),
        "get",
        &format!("{data}/nope"),
    ])
    .fails(1, "not found");
    assert_eq!(
        oplog_rows(&log("fail.zst")),
        vec![r("GET", 1, 0, &format!("{data}/nope"), true)]
    );

    run(&[
        "--op-log",
        log("rm.zst").to_str().unwrap(),
        "rm",
        "-r",
        &format!("{data}/"),
    ])
    .ok();
    assert_eq!(
        oplog_rows(&log("rm.zst")),
        vec![
            r("LIST", 4, 0, &format!("{data}/"), false),
            r("DELETE", 4, 0, &format!("{data}/copy.dat"), false)
        ]
    );

    // Plain `--op-log` files: warp's header, zstd-compressed.
    let raw = std::fs::read(log("put.zst")).unwrap();
    let text = String::from_utf8(zstd::decode_all(&raw[..]).unwrap()).unwrap();
    assert_eq!(text.lines().next().unwrap(), s3dlio_metrics::HEADER);
}

#[test]
fn oplog_stats_summarises_per_operation() {
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("ops.tsv.zst");
    let data = format!("{}/", uri(&t.path().join("d")));
    run(&[
        "--op-log",
        log.to_str().unwrap(),
        "put",
        &data,
        "-n",
        "4",
        "-s",
        "1KiB",
    ])
    .ok();
    let out = run(&["oplog", "stats", log.to_str().unwrap()]).ok().out();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with(": 4 operations"), "{out}");
    for col in [
        "count", "errors", "bytes", "mean", "p50", "p99", "ttfb p50", "bytes/s", "ops/s",
    ] {
        assert!(lines[1].contains(col), "{col}: {out}");
    }
    let put: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&put[..5], &["PUT", "4", "0", "4.00", "KiB"], "{out}");
    assert!(lines[3].contains("rows=4 dropped=0"), "{out}");

    let json = run(&["--json", "oplog", "stats", log.to_str().unwrap()])
        .ok()
        .out();
    assert!(
        json.starts_with("{\"op\":\"PUT\",\"count\":4,\"errors\":0,\"objects\":4,\"bytes\":4096,"),
        "{json}"
    );
    assert!(json.contains("\"ttfb_p50_ns\":null"), "{json}");

    run(&["oplog", "stats", t.path().join("none").to_str().unwrap()]).fails(1, "oplog stats");
    std::fs::write(t.path().join("junk"), "a\tb\n").unwrap();
    run(&["oplog", "stats", t.path().join("junk").to_str().unwrap()])
        .fails(1, "not an op-log header");
}

#[test]
fn metrics_prints_a_latency_table_or_json() {
    let t = tempfile::tempdir().unwrap();
    let data = format!("{}/", uri(&t.path().join("d")));
    let r = run(&["--metrics", "put", &data, "-n", "5", "-s", "2KiB"]).ok();
    let header = r
        .stderr
        .lines()
        .find(|l| l.starts_with("backend"))
        .expect(&r.stderr);
    for col in [
        "count", "errors", "bytes", "p50", "p90", "p99", "p99.9", "p99.99", "max",
    ] {
        assert!(header.contains(col), "{col}: {}", r.stderr);
    }
    let put: Vec<&str> = r
        .stderr
        .lines()
        .find(|l| l.starts_with("file") && l.contains(" PUT "))
        .expect(&r.stderr)
        .split_whitespace()
        .collect();
    assert_eq!(&put[..4], &["file", "PUT", "5", "0"], "{}", r.stderr);

    let r = run(&["--metrics", "get", "-r", &data]).ok();
    assert!(r.stderr.contains("GET ttfb"), "{}", r.stderr);
    let r = run(&["--json", "--metrics", "get", "-r", &data]).ok();
    let json = r
        .stderr
        .lines()
        .find(|l| l.starts_with("{\"elapsed_s\""))
        .expect(&r.stderr);
    assert!(json.contains("\"op\":\"GET\""), "{json}");
    assert!(json.contains("\"count\":5"), "{json}");
    assert!(json.contains("\"p99_99\""), "{json}");
}

#[test]
fn debug_logging_shows_one_span_per_operation() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("x.bin");
    std::fs::write(&f, b"hello").unwrap();
    let r = run(&["-vv", "stat", &uri(&f)]).ok();
    assert!(
        r.stderr
            .contains(&format!("s3dlio.op{{op=\"HEAD\" uri={}}}: done", uri(&f))),
        "{}",
        r.stderr
    );
    // RUST_LOG decides when set: the spans alone, without -v.
    let r = finish(
        cmd()
            .env("RUST_LOG", "s3dlio_metrics=debug")
            .args(["get", &uri(&f)])
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(r.stdout, b"hello");
    assert!(
        r.stderr.contains("op=\"GET\"") && r.stderr.contains("bytes=5"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_closed_stdout_still_leaves_a_readable_op_log() {
    use std::io::Read;
    use std::process::Stdio;
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("big.bin");
    std::fs::write(&f, bytes(16 << 20, 7)).unwrap();
    let log = t.path().join("ops.tsv.zst");
    let mut child = cmd()
        .args(["--op-log", log.to_str().unwrap(), "stat", &uri(&f)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    // `| head -c 10`: the reader goes away after a few bytes of a 16 MiB object.
    let log2 = t.path().join("get.tsv.zst");
    let mut child = cmd()
        .args(["--op-log", log2.to_str().unwrap(), "get", &uri(&f)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "a closed pipe ends s3-cli quietly"
    );
    assert_eq!(
        oplog_rows(&log),
        vec![("HEAD".to_owned(), 1, 0, uri(&f), false)]
    );
    // The GET was cut short by the exit; the log is complete and readable all the same.
    let log2 = s3dlio_metrics::read_op_log(&log2).unwrap();
    assert!(log2.rows.len() <= 1, "{:?}", log2.rows);
    assert!(
        log2.comments[0].contains("dropped=0"),
        "{:?}",
        log2.comments
    );
}
