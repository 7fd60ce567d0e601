//! `s3-cli` against the S3 test servers started by `cargo xtask test` (SeaweedFS, moto).

mod common;

use std::path::Path;

use common::*;

fn s3uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

fn fresh_bucket(s3: &S3, tag: &str) -> String {
    let b = bucket(tag);
    s3.run(&["create-bucket", &b]).ok();
    b
}

fn drop_bucket(s3: &S3, b: &str) {
    s3.run(&["rm", "-r", &s3uri(b, "")]).ok();
    s3.run(&["delete-bucket", &format!("s3://{b}")]).ok();
}

#[test]
fn bucket_commands() {
    let s3 = S3::seaweedfs();
    let b = bucket("buckets");
    let r = s3.run(&["create-bucket", &format!("s3://{b}")]).ok();
    assert!(r.stderr.contains(&format!("created bucket s3://{b}")));
    let names = s3.run(&["list-buckets"]).ok().out();
    assert!(names.lines().any(|l| l == b), "{names}");
    let json = s3.run(&["--json", "list-buckets"]).ok().out();
    assert!(json.contains(&format!("{{\"bucket\":\"{b}\"}}")), "{json}");
    // `ls s3://` lists the buckets too, as `aws s3 ls` does; -p and -c apply to names
    // (other tests create buckets meanwhile, so only this one's lines are compared).
    let ls = s3.run(&["ls", "s3://"]).ok().out();
    assert!(ls.lines().any(|l| l == b), "{ls}");
    let json_ls = s3.run(&["--json", "ls", "s3://"]).ok().out();
    assert!(
        json_ls.contains(&format!("{{\"bucket\":\"{b}\"}}")),
        "{json_ls}"
    );
    let only = s3.run(&["ls", "-p", &format!("^{b}$"), "s3://"]).ok().out();
    assert_eq!(only.trim(), b);
    let n = s3
        .run(&["ls", "-c", "-p", &format!("^{b}$"), "s3://"])
        .ok()
        .out();
    assert_eq!(n.trim(), "1");
    s3.run(&["delete-bucket", &b]).ok();
    let names = s3.run(&["list-buckets"]).ok().out();
    assert!(!names.lines().any(|l| l == b));
    s3.run(&["ls", &s3uri(&b, "")]).fails(1, "NoSuchBucket");
    s3.run(&["create-bucket", "s3://bad/key"])
        .fails(1, "a bucket URI has no key");
}

fn roundtrip(s3: &S3, tag: &str) {
    let b = fresh_bucket(s3, tag);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("tree");
    write_tree(&src, &sample_tree());
    let r = s3
        .run(&["upload", src.to_str().unwrap(), &s3uri(&b, "in/")])
        .ok();
    assert!(r.stderr.contains("uploaded 6 objects"), "{}", r.stderr);
    assert_eq!(
        s3.run(&["ls", "-r", "-c", &s3uri(&b, "in/")])
            .ok()
            .out()
            .trim(),
        "6"
    );
    let ls = s3.run(&["ls", &s3uri(&b, "in/tree/")]).ok().out();
    assert!(
        ls.contains("PRE") && ls.contains(&s3uri(&b, "in/tree/sub/")),
        "{ls}"
    );
    let dl = t.path().join("dl");
    s3.run(&[
        "download",
        "-r",
        &s3uri(&b, "in/tree/"),
        dl.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(read_tree(&dl), read_tree(&src));
    // get -r into a directory, and read-and-discard.
    let gd = t.path().join("gd");
    s3.run(&["get", "-r", &s3uri(&b, "in/"), gd.to_str().unwrap()])
        .ok();
    assert_eq!(read_tree(&gd.join("tree")), read_tree(&src));
    let r = s3.run(&["get", "-r", "-j", "4", &s3uri(&b, "in/")]).ok();
    assert!(r.stderr.contains("read 6 objects"), "{}", r.stderr);
    let r = s3
        .run(&[
            "get",
            &s3uri(&b, "in/tree/sub/deeper/d.bin"),
            "--offset",
            "1000",
            "--length",
            "10",
        ])
        .ok();
    assert_eq!(r.stdout, bytes(1_500_000, 4)[1000..1010]);
    drop_bucket(s3, &b);
}

#[test]
fn tree_roundtrip_seaweedfs() {
    roundtrip(&S3::seaweedfs(), "tree");
}

#[test]
fn tree_roundtrip_moto() {
    roundtrip(&S3::moto(), "treemoto");
}

#[test]
fn cp_between_backends() {
    let s3 = S3::seaweedfs();
    let (b1, b2) = (fresh_bucket(&s3, "cp1"), fresh_bucket(&s3, "cp2"));
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f.bin");
    let data = bytes(3_000_000, 9);
    std::fs::write(&f, &data).unwrap();
    // file -> s3 (into a prefix), s3 -> s3 (other bucket, and same bucket), s3 -> file.
    s3.run(&["cp", f.to_str().unwrap(), &s3uri(&b1, "x/")]).ok();
    s3.run(&["cp", &s3uri(&b1, "x/f.bin"), &s3uri(&b2, "y.bin")])
        .ok();
    s3.run(&["cp", &s3uri(&b2, "y.bin"), &s3uri(&b2, "z.bin")])
        .ok();
    let back = t.path().join("back.bin");
    s3.run(&[
        "cp",
        &s3uri(&b2, "z.bin"),
        &format!("file://{}", back.display()),
    ])
    .ok();
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Trees: s3 -> s3 with -r.
    let src = t.path().join("tree");
    write_tree(&src, &sample_tree());
    s3.run(&["upload", &format!("{}/", src.display()), &s3uri(&b1, "t/")])
        .ok();
    s3.run(&["cp", "-r", &s3uri(&b1, "t/"), &s3uri(&b2, "copy/")])
        .ok();
    let dl = t.path().join("dl");
    s3.run(&["download", "-r", &s3uri(&b2, "copy/"), dl.to_str().unwrap()])
        .ok();
    assert_eq!(read_tree(&dl), read_tree(&src));
    s3.run(&["stat", &s3uri(&b1, "nope")]).fails(1, "not found");
    drop_bucket(&s3, &b1);
    drop_bucket(&s3, &b2);
}

#[test]
fn multipart_upload_with_small_parts() {
    let s3 = S3::seaweedfs();
    let b = fresh_bucket(&s3, "mp");
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("big.bin");
    let data = bytes(23 << 20, 11);
    std::fs::write(&f, &data).unwrap();
    let r = finish(
        s3.cmd()
            .env("S3DLIO_PART_SIZE", "5MiB")
            .env("S3DLIO_MULTIPART_THRESHOLD", "5MiB")
            .args(["upload", f.to_str().unwrap(), &s3uri(&b, "big.bin")])
            .output()
            .unwrap(),
    )
    .ok();
    assert!(r.stderr.contains("23.0 MiB"), "{}", r.stderr);
    let st = s3
        .run(&["--json", "stat", &s3uri(&b, "big.bin")])
        .ok()
        .out();
    assert!(
        st.contains("-5\\\"\"") || st.contains("-5\""),
        "ETag of 5 parts expected: {st}"
    );
    assert!(st.contains(&format!("\"size\":{}", 23 << 20)), "{st}");
    let back = t.path().join("back.bin");
    s3.run(&["get", &s3uri(&b, "big.bin"), back.to_str().unwrap()])
        .ok();
    assert!(std::fs::read(&back).unwrap() == data);
    // A bad tuning value is named.
    finish(
        s3.cmd()
            .env("S3DLIO_PART_SIZE", "lots")
            .args(["ls", &s3uri(&b, "")])
            .output()
            .unwrap(),
    )
    .fails(1, "S3DLIO_PART_SIZE");
    drop_bucket(&s3, &b);
}

#[test]
fn put_ls_rm_on_s3() {
    let s3 = S3::seaweedfs();
    let b = bucket("put");
    // -c creates the bucket.
    s3.run(&[
        "put",
        &s3uri(&b, "gen/"),
        "-c",
        "-n",
        "25",
        "-s",
        "40KiB",
        "-j",
        "8",
    ])
    .ok();
    assert_eq!(
        s3.run(&["ls", "-r", "-c", &s3uri(&b, "gen/")])
            .ok()
            .out()
            .trim(),
        "25"
    );
    s3.run(&[
        "put",
        &s3uri(&b, "gen/sp-{}.npz"),
        "-n",
        "2",
        "-s",
        "100k",
        "-o",
        "npz",
        "--data-gen-mode",
        "single-pass",
    ])
    .ok();
    let st = s3.run(&["stat", &s3uri(&b, "gen/sp-1.npz")]).ok().out();
    assert!(st.contains("size "), "{st}");
    // Regex delete: objects 10..19.
    let r = s3
        .run(&["rm", "-r", "-p", "^object_1[0-9]_", &s3uri(&b, "gen/")])
        .ok();
    assert!(r.stderr.contains("deleted 10 objects"), "{}", r.stderr);
    assert_eq!(
        s3.run(&["ls", "-r", "-c", &s3uri(&b, "gen/")])
            .ok()
            .out()
            .trim(),
        "17"
    );
    s3.run(&["rm", &s3uri(&b, "gen/object_0_of_25.dat")]).ok();
    s3.run(&["rm", &s3uri(&b, "gen/object_0_of_25.dat")])
        .fails(1, "not found");
    drop_bucket(&s3, &b);
}

#[test]
fn upload_patterns_to_s3() {
    let s3 = S3::moto();
    let b = fresh_bucket(&s3, "pat");
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("logs");
    write_tree(
        &d,
        &[
            ("a.log", b"a".to_vec()),
            ("xa.logz", b"x".to_vec()),
            ("s/c.log", b"c".to_vec()),
        ],
    );
    let dir = d.display().to_string();
    s3.run(&["upload", &format!(r"{dir}/.*\.log"), &s3uri(&b, "rx/")])
        .ok();
    s3.run(&["upload", &format!("{dir}/**/*.log"), &s3uri(&b, "gl/")])
        .ok();
    let keys = s3.run(&["ls", "-r", &s3uri(&b, "")]).ok().out();
    let mut got: Vec<&str> = keys
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    got.sort();
    let want = [
        s3uri(&b, "gl/a.log"),
        s3uri(&b, "gl/s/c.log"),
        s3uri(&b, "rx/a.log"),
    ];
    assert_eq!(got, want, "{keys}");
    assert!(Path::new(&dir).join("xa.logz").exists());
    drop_bucket(&s3, &b);
}

#[test]
fn op_log_on_s3_holds_each_operation() {
    let s3 = S3::seaweedfs();
    let b = fresh_bucket(&s3, "oplog");
    let t = tempfile::tempdir().unwrap();
    let log = |n: &str| t.path().join(n);
    let arg = |n: &str| log(n).to_str().unwrap().to_owned();
    let obj = |i: u64| s3uri(&b, &format!("ol/object_{i}_of_2.dat"));
    type Row = (String, u64, u64, String, bool);
    let r = |op: &str, n: u64, bytes: u64, file: &str, failed: bool| -> Row {
        (op.into(), n, bytes, file.into(), failed)
    };
    s3.run(&[
        "--op-log",
        &arg("put"),
        "put",
        &s3uri(&b, "ol/"),
        "-n",
        "2",
        "-s",
        "10KiB",
    ])
    .ok();
    assert_eq!(
        sorted(oplog_rows(&log("put"))),
        vec![
            r("PUT", 1, 10_240, &obj(0), false),
            r("PUT", 1, 10_240, &obj(1), false)
        ]
    );
    s3.run(&[
        "--op-log",
        &arg("get"),
        "--metrics",
        "get",
        "-r",
        &s3uri(&b, "ol/"),
    ])
    .ok();
    let rows = oplog_rows(&log("get"));
    assert_eq!(rows[0], r("LIST", 2, 0, &s3uri(&b, "ol/"), false));
    assert_eq!(
        sorted(rows[1..].to_vec()),
        vec![
            r("GET", 1, 10_240, &obj(0), false),
            r("GET", 1, 10_240, &obj(1), false)
        ]
    );
    let f = s3dlio_metrics::read_op_log(log("get")).unwrap();
    assert!(f.rows.iter().all(|r| r.endpoint == format!("s3://{b}/")));
    s3.run(&["--op-log", &arg("stat"), "stat", &s3uri(&b, "ol/nope")])
        .fails(1, "not found");
    assert_eq!(
        oplog_rows(&log("stat")),
        vec![r("HEAD", 1, 0, &s3uri(&b, "ol/nope"), true)]
    );
    drop_bucket(&s3, &b);
}

#[test]
fn tfrecord_index_and_verify_on_s3() {
    let s3 = S3::seaweedfs();
    let b = fresh_bucket(&s3, "tfrecord");
    // Generated straight into the bucket: 5 MB in 64 KiB records.
    s3.run(&[
        "put",
        &s3uri(&b, "tf/"),
        "-n",
        "1",
        "-s",
        "5000000",
        "-o",
        "tfrecord",
        "-t",
        "d.tfrecord",
    ])
    .ok();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("d.tfrecord");
    s3.run(&["get", &s3uri(&b, "tf/d.tfrecord"), local.to_str().unwrap()])
        .ok();
    run(&["tfrecord", "index", local.to_str().unwrap()]).ok();
    let want = std::fs::read_to_string(t.path().join("d.tfrecord.idx")).unwrap();
    assert_eq!(want.lines().count(), 77);
    // An object's index goes to stdout by default, or to an object or a path.
    let out = s3
        .run(&["tfrecord", "index", "--verify", &s3uri(&b, "tf/d.tfrecord")])
        .ok()
        .out();
    assert_eq!(out, want);
    s3.run(&[
        "tfrecord",
        "index",
        &s3uri(&b, "tf/d.tfrecord"),
        "-o",
        &s3uri(&b, "tf/d.tfrecord.idx"),
    ])
    .ok();
    let got = s3.run(&["get", &s3uri(&b, "tf/d.tfrecord.idx")]).ok().out();
    assert_eq!(got, want);
    // One streaming GET per verify (the metrics layer counts it).
    let r = s3
        .run(&[
            "--metrics",
            "--json",
            "tfrecord",
            "verify",
            &s3uri(&b, "tf/d.tfrecord"),
        ])
        .ok();
    assert!(r.out().contains("\"records\":77"), "{}", r.out());
    let gets = r.stderr.matches("\"op\":\"GET\"").count();
    assert!(
        gets == 1 && r.stderr.contains("\"count\":1,\"errors\""),
        "{}",
        r.stderr
    );
    // A damaged copy fails naming the record.
    let mut bytes = std::fs::read(&local).unwrap();
    bytes[65_552 * 3 + 12 + 9] ^= 1;
    std::fs::write(&local, &bytes).unwrap();
    s3.run(&["cp", local.to_str().unwrap(), &s3uri(&b, "tf/bad.tfrecord")])
        .ok();
    s3.run(&["tfrecord", "verify", &s3uri(&b, "tf/bad.tfrecord")])
        .fails(1, "bad data CRC at offset 196656 (record 3)");
    drop_bucket(&s3, &b);
}

#[test]
fn upload_with_encryption_and_storage_class() {
    // moto: SeaweedFS has no KMS; moto stores and reports both settings.
    let s3 = S3::moto();
    let b = fresh_bucket(&s3, "sse");
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a.bin", vec![7u8; 1000])]);
    let src = dir.path().join("a.bin");
    let flags = [
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        "alias/cli-test",
        "--storage-class",
        "STANDARD_IA",
    ];
    let mut args = flags.to_vec();
    args.extend(["upload", src.to_str().unwrap()]);
    let dest = s3uri(&b, "enc/");
    args.push(&dest);
    s3.run(&args).ok();
    let script = format!(
        "import boto3\n\
         c = boto3.client('s3', endpoint_url='{}', aws_access_key_id='a', \
         aws_secret_access_key='b', region_name='us-east-1')\n\
         h = c.head_object(Bucket='{b}', Key='enc/a.bin')\n\
         print(h.get('ServerSideEncryption'), h.get('SSEKMSKeyId'), h.get('StorageClass'))",
        s3.endpoint
    );
    if let Some(out) = common::python::python_with(&["boto3"], &script) {
        assert_eq!(out.trim(), "aws:kms alias/cli-test STANDARD_IA");
    }
    // A key without aws:kms, and an unknown kind, are refused before any request.
    s3.run(&["--sse-kms-key-id", "k", "ls", &s3uri(&b, "")])
        .fails(1, "--sse-kms-key-id needs --sse aws:kms");
    s3.run(&["--sse", "rot13", "ls", &s3uri(&b, "")])
        .fails(1, "'rot13' is not a server-side encryption");
    drop_bucket(&s3, &b);
}

#[test]
fn remote_globs_on_s3() {
    let s3 = S3::seaweedfs();
    let b = fresh_bucket(&s3, "globs");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("tree");
    write_tree(&src, &sample_tree());
    s3.run(&["upload", &format!("{}/", src.display()), &s3uri(&b, "in/")])
        .ok();
    let ls = s3.run(&["ls", &s3uri(&b, "in/**/*.log")]).ok().out();
    assert_eq!(ls.lines().count(), 2, "{ls}");
    assert!(ls.contains(&s3uri(&b, "in/a.log")) && ls.contains(&s3uri(&b, "in/sub/c.log")));
    let dl = t.path().join("dl");
    let r = s3
        .run(&[
            "download",
            &s3uri(&b, "in/*.{txt,bin}"),
            dl.to_str().unwrap(),
        ])
        .ok();
    assert!(r.stderr.contains("downloaded 2 objects"), "{}", r.stderr);
    let got: Vec<String> = read_tree(&dl).into_iter().map(|(n, _)| n).collect();
    assert_eq!(got, ["b.txt", "empty.bin"]);
    assert_eq!(
        read_tree(&dl)[0].1,
        std::fs::read(src.join("b.txt")).unwrap()
    );
    s3.run(&["download", &s3uri(&b, "in/*.none"), dl.to_str().unwrap()])
        .fails(1, "the glob matches no objects");
    let r = s3.run(&["rm", &s3uri(&b, "in/**/*.log")]).ok();
    assert!(r.stderr.contains("deleted 2 objects"), "{}", r.stderr);
    let n = s3.run(&["ls", "-r", "-c", &s3uri(&b, "in/")]).ok().out();
    assert_eq!(n.trim(), "4");
    drop_bucket(&s3, &b);
}

#[test]
fn sync_to_and_from_s3() {
    let s3 = S3::seaweedfs();
    let b = fresh_bucket(&s3, "sync");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("tree");
    write_tree(&src, &sample_tree());
    let local = format!("{}/", src.display());
    let r = s3.run(&["sync", &local, &s3uri(&b, "ds/")]).ok();
    assert!(r.stderr.contains("6 copied, 0 up to date"), "{}", r.stderr);
    // The objects are newer than the files: nothing to do either way.
    let r = s3.run(&["sync", &local, &s3uri(&b, "ds/")]).ok();
    assert!(r.stderr.contains("0 copied, 6 up to date"), "{}", r.stderr);
    let back = t.path().join("back");
    let r = s3
        .run(&["sync", &s3uri(&b, "ds/"), &format!("{}/", back.display())])
        .ok();
    assert!(r.stderr.contains("6 copied"), "{}", r.stderr);
    assert_eq!(read_tree(&back), read_tree(&src));
    let r = s3
        .run(&["sync", &s3uri(&b, "ds/"), &format!("{}/", back.display())])
        .ok();
    assert!(r.stderr.contains("0 copied, 6 up to date"), "{}", r.stderr);
    // A file removed locally goes from the bucket with --delete; one that grew is copied.
    std::fs::remove_file(src.join("a.log")).unwrap();
    std::fs::write(src.join("b.txt"), bytes(6000, 7)).unwrap();
    let r = s3
        .run(&["sync", "--delete", &local, &s3uri(&b, "ds/")])
        .ok();
    assert!(
        r.stderr.contains("1 copied, 4 up to date, 1 deleted"),
        "{}",
        r.stderr
    );
    let n = s3.run(&["ls", "-r", "-c", &s3uri(&b, "ds/")]).ok().out();
    assert_eq!(n.trim(), "5");
    let got = s3.run(&["get", &s3uri(&b, "ds/b.txt")]).ok();
    assert_eq!(got.stdout, bytes(6000, 7));
    drop_bucket(&s3, &b);
}
