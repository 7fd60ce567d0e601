//! `s3-cli` against file:// (temporary directories).

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::python::python_with;
use common::*;

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn upload_download_roundtrip_keeps_tree_and_bytes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write_tree(&src, &sample_tree());
    let store = t.path().join("store");
    // A directory keeps its name; with a trailing slash only its contents go.
    run(&[
        "upload",
        src.to_str().unwrap(),
        &format!("{}/", uri(&store)),
    ])
    .ok();
    assert_eq!(read_tree(&store.join("src")), read_tree(&src));
    run(&[
        "upload",
        &format!("{}/", src.display()),
        &format!("{}/flat/", store.display()),
    ])
    .ok();
    assert_eq!(read_tree(&store.join("flat")), read_tree(&src));

    let dl = t.path().join("dl");
    let r = run(&[
        "download",
        "-r",
        &format!("{}/src/", uri(&store)),
        dl.to_str().unwrap(),
    ])
    .ok();
    assert!(r.stderr.contains("downloaded 6 objects"), "{}", r.stderr);
    assert_eq!(read_tree(&dl), read_tree(&src));
    // Without -r and with a trailing slash: one level only.
    let one = t.path().join("one");
    run(&[
        "download",
        &format!("{}/src/", uri(&store)),
        one.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(read_tree(&one).len(), 4);
    // One object, relative destination directory.
    let r = common::finish(
        cmd()
            .current_dir(t.path())
            .args([
                "download",
                &format!("{}/src/b.txt", uri(&store)),
                "./single/",
            ])
            .output()
            .unwrap(),
    )
    .ok();
    assert!(r.stderr.contains("1 object"));
    assert_eq!(
        std::fs::read(t.path().join("single/b.txt")).unwrap(),
        bytes(5000, 2)
    );
}

#[test]
fn globs_and_regexes_select_exactly() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("logs");
    write_tree(
        &src,
        &[
            ("a.log", b"a".to_vec()),
            ("xa.logz", b"x".to_vec()),
            ("b.txt", b"b".to_vec()),
            ("file_12.txt", b"12".to_vec()),
            ("file_x.txt", b"x".to_vec()),
            ("sub/c.log", b"c".to_vec()),
        ],
    );
    let s = src.display().to_string();
    let case = |pattern: &str, want: &[&str]| {
        let dest = t
            .path()
            .join(format!("out{}", want.len() * 100 + pattern.len()));
        let _ = std::fs::remove_dir_all(&dest);
        run(&["upload", pattern, &format!("{}/", dest.display())]).ok();
        let got: Vec<String> = read_tree(&dest).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, want, "pattern {pattern}");
    };
    case(&format!("{s}/*.log"), &["a.log"]);
    case(&format!("{s}/**/*.log"), &["a.log", "sub/c.log"]);
    case(&format!("{s}/*.log*"), &["a.log", "xa.logz"]);
    // Regexes match the whole name: `a.log` never matches `xa.logz`.
    case(&format!(r"{s}/a\.log"), &["a.log"]);
    case(&format!(r"{s}/.*\.log$"), &["a.log"]);
    case(&format!(r"{s}/file_[0-9]+\.txt"), &["file_12.txt"]);
    case(&format!(r"{s}/.*/.*\.log"), &["sub/c.log"]);
    // Several sources at once, as a shell expands them.
    let dest = t.path().join("multi");
    run(&[
        "upload",
        &format!("{s}/a.log"),
        &format!("{s}/b.txt"),
        &format!("{}/", dest.display()),
    ])
    .ok();
    assert_eq!(read_tree(&dest).len(), 2);
    // Nothing matched, bad regex: clear errors.
    run(&[
        "upload",
        &format!("{s}/*.none"),
        &format!("{}/", dest.display()),
    ])
    .fails(1, "matches no files");
    run(&[
        "upload",
        &format!(r"{s}/(\.log"),
        &format!("{}/", dest.display()),
    ])
    .fails(1, "invalid regex");
    run(&[
        "upload",
        &format!("{s}/missing.bin"),
        &format!("{}/", dest.display()),
    ])
    .fails(1, "no such file or directory");
}

#[test]
fn ls_stat_get_cp_rm() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("data");
    write_tree(&root, &sample_tree());
    let base = format!("{}/", uri(&root));

    let r = run(&["ls", &base]).ok().out();
    assert!(r.contains("PRE") && r.contains("/data/sub/"), "{r}");
    assert!(r.contains("4.9 KiB") && r.contains("/data/b.txt"), "{r}");
    let r = run(&["ls", "-r", "--bytes", &base]).ok().out();
    assert!(
        r.contains("1500000") && r.contains("sub/deeper/d.bin"),
        "{r}"
    );
    assert_eq!(run(&["list", "-r", "-c", &base]).ok().out().trim(), "6");
    assert_eq!(
        run(&["ls", "-r", "-c", "-p", r"\.log$", &base])
            .ok()
            .out()
            .trim(),
        "2"
    );
    // The regex searches below the prefix's directory: `^sub/` anchors there.
    assert_eq!(
        run(&["ls", "-r", "-c", "-p", "^sub/", &base])
            .ok()
            .out()
            .trim(),
        "2"
    );
    let j = run(&["ls", "-r", "--json", &base]).ok().out();
    assert_eq!(j.lines().count(), 6);
    assert!(j
        .lines()
        .all(|l| l.starts_with("{\"uri\":\"file://") && l.ends_with('}')));
    assert!(j.contains("\"size\":5000"), "{j}");

    let s = run(&["stat", &format!("{base}b.txt")]).ok().out();
    assert!(s.contains("size           5000 (4.9 KiB)"), "{s}");
    let s = run(&["--json", "stat", &format!("{base}b.txt")]).ok().out();
    assert!(
        s.contains("\"size\":5000") && s.contains("\"etag\":"),
        "{s}"
    );

    // get: whole to stdout, a range, to a file, a prefix to a directory, a keylist.
    let r = run(&["get", &format!("{base}sub/c.log")]).ok();
    assert_eq!(r.stdout, bytes(70_000, 3));
    let r = run(&[
        "get",
        &format!("{base}sub/c.log"),
        "--offset",
        "100",
        "--length",
        "1KiB",
    ])
    .ok();
    assert_eq!(r.stdout, bytes(70_000, 3)[100..1124]);
    let out = t.path().join("got.bin");
    run(&["get", &format!("{base}b.txt"), out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), bytes(5000, 2));
    let gd = t.path().join("getdir");
    run(&["get", "-r", "-j", "3", &base, gd.to_str().unwrap()]).ok();
    assert_eq!(read_tree(&gd), read_tree(&root));
    let r = run(&["get", "-r", &base]).ok();
    assert!(r.stderr.contains("read 6 objects"), "{}", r.stderr);
    let list = t.path().join("keys.txt");
    std::fs::write(
        &list,
        format!("# two objects\n{base}a.log\n\n{base}sub/c.log\n"),
    )
    .unwrap();
    let kd = t.path().join("kd");
    run(&[
        "get",
        "--keylist",
        list.to_str().unwrap(),
        kd.to_str().unwrap(),
    ])
    .ok();
    let kt = read_tree(&kd);
    assert_eq!(kt.len(), 2);
    assert!(kt[1].0.ends_with("data/sub/c.log"), "{:?}", kt[1].0);

    // cp: one object into a directory, to a name, and a tree.
    let cpd = t.path().join("cp");
    std::fs::create_dir_all(&cpd).unwrap();
    run(&[
        "cp",
        &format!("{base}sub/deeper/d.bin"),
        cpd.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read(cpd.join("d.bin")).unwrap(),
        bytes(1_500_000, 4)
    );
    run(&[
        "cp",
        &format!("{base}b.txt"),
        &format!("{}/renamed", uri(&cpd)),
    ])
    .ok();
    assert_eq!(std::fs::read(cpd.join("renamed")).unwrap(), bytes(5000, 2));
    run(&["cp", "-r", &base, &format!("{}/tree/", uri(&cpd))]).ok();
    assert_eq!(read_tree(&cpd.join("tree")), read_tree(&root));
    run(&["cp", &base, &format!("{}/x", uri(&cpd))]).fails(1, "use cp -r");

    // rm: one key, a regex under a prefix, a prefix; a missing key is an error.
    run(&["rm", &format!("{base}a.log")]).ok();
    run(&["rm", &format!("{base}a.log")]).fails(1, "not found");
    let r = run(&["delete", "-r", "-p", r"\.log$", &base]).ok();
    assert!(r.stderr.contains("deleted 1 object"), "{}", r.stderr);
    run(&["rm", "-r", &base]).ok();
    assert_eq!(run(&["ls", "-r", "-c", &base]).ok().out().trim(), "0");
}

#[test]
fn bucket_commands_on_file_are_directories() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("bucket");
    run(&["create-bucket", &uri(&d)]).ok();
    assert!(d.is_dir());
    std::fs::write(d.join("x"), b"x").unwrap();
    run(&["delete-bucket", &uri(&d)]).fails(1, "only an empty directory");
    std::fs::remove_file(d.join("x")).unwrap();
    run(&["delete-bucket", d.to_str().unwrap()]).ok();
    assert!(!d.exists());
    run(&["list-buckets", "file://"]).fails(1, "buckets are an S3 concept");
}

#[test]
fn malformed_input_is_rejected_clearly() {
    // (`ls s3://` alone lists the buckets.)
    run(&["ls", "s3:///x"]).fails(1, "missing bucket");
    run(&["get", "s3://"]).fails(1, "missing bucket");
    run(&["ls", "s3://s3://x"]).fails(1, "bucket name 's3:' is invalid");
    run(&["ls", "gs://b/k"]).fails(1, "unknown scheme 'gs://'");
    run(&["ls", "file://relative/x"]).fails(1, "absolute path");
    run(&["stat", "data/x"]).fails(1, "not a URI");
    // az:// is registered (crates/cli/tests/azure.rs runs it against Azurite); a URI that
    // names no container fails before any request.
    run(&["ls", "az://cont"]).fails(1, "set AZURE_STORAGE_ACCOUNT");
    run(&["put", "file:///tmp/x/", "-s", "12XB"]).fails(2, "unknown unit 'XB'");
    run(&["put", "file:///tmp/x/", "-s", "1.5"]).fails(2, "a fraction needs a unit");
    run(&["put", "file:///tmp/x/", "-n", "3x"]).fails(2, "unknown suffix 'x'");
    run(&["put", "file:///tmp/x/", "-j", "0"]).fails(2, "must be at least 1");
    run(&["get", "file:///tmp/x", "--offset", "abc"]).fails(2, "unknown unit 'abc'");
    run(&["put", "file:///tmp/x/", "-o", "hdf5"]).fails(2, "invalid value 'hdf5'");
    run(&["frobnicate"]).fails(2, "unrecognized subcommand");
    run(&["--endpoint-url", "localhost:9000", "ls", "s3://b/"]).fails(1, "http://");
}

#[test]
fn download_never_writes_outside_the_directory() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write_tree(
        &src,
        &[
            ("evil/x.bin", b"payload".to_vec()),
            ("ok/y.bin", b"fine".to_vec()),
        ],
    );
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dest = t.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    // A symlink planted in the destination that points out of it.
    std::os::unix::fs::symlink(&outside, dest.join("evil")).unwrap();
    let r = run(&[
        "download",
        "-r",
        &format!("{}/", uri(&src)),
        dest.to_str().unwrap(),
    ]);
    let r = r.fails(1, "1 of 2 objects failed");
    assert!(r.stderr.contains("evil/x.bin"), "{}", r.stderr);
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote outside"
    );
    assert_eq!(std::fs::read(dest.join("ok/y.bin")).unwrap(), b"fine");
}

#[test]
fn partial_failures_name_each_failed_object() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write_tree(
        &src,
        &[
            ("a/1", b"1".to_vec()),
            ("b/2", b"2".to_vec()),
            ("c/3", b"3".to_vec()),
        ],
    );
    let dest = t.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    // A file where a directory must go makes exactly one object fail.
    std::fs::write(dest.join("b"), b"in the way").unwrap();
    let r = run(&[
        "download",
        "-r",
        &format!("{}/", uri(&src)),
        dest.to_str().unwrap(),
    ])
    .fails(1, "1 of 3 objects failed");
    assert!(r.stderr.contains("src/b/2"), "{}", r.stderr);
    assert_eq!(std::fs::read(dest.join("c/3")).unwrap(), b"3");
}

#[test]
fn put_writes_distinct_reproducible_objects() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let base = format!("{}/", uri(&a));
    run(&[
        "put", &base, "-n", "4", "-s", "300KiB", "--seed", "7", "-j", "2",
    ])
    .ok();
    let objs = read_tree(&a);
    let names: Vec<&str> = objs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "object_0_of_4.dat",
            "object_1_of_4.dat",
            "object_2_of_4.dat",
            "object_3_of_4.dat"
        ]
    );
    assert!(objs.iter().all(|(_, d)| d.len() == 300 * 1024));
    let distinct: HashSet<&Vec<u8>> = objs.iter().map(|(_, d)| d).collect();
    assert_eq!(distinct.len(), 4, "objects must differ");
    // Same seed, single-pass mode, template in the prefix: same bytes.
    let b = t.path().join("b");
    run(&[
        "put",
        &format!("{}/obj-{{}}.bin", uri(&b)),
        "--num",
        "4",
        "--size",
        "300KiB",
        "--seed",
        "7",
        "--data-gen-mode",
        "single-pass",
    ])
    .ok();
    assert_eq!(std::fs::read(b.join("obj-2.bin")).unwrap(), objs[2].1);
    // -t with a second placeholder, -c creating the directory.
    let c = t.path().join("c/deep");
    run(&[
        "put",
        &base.replace("/a/", "/c/deep/"),
        "-n",
        "2",
        "-s",
        "1k",
        "-t",
        "f{}-{}",
        "-c",
    ])
    .ok();
    assert!(c.join("f1-2").is_file());
    // Three ranks write the same four objects between them, byte for byte.
    let d = t.path().join("d");
    let dir = format!("{}/", uri(&d));
    for rank in ["0", "1", "2"] {
        let share = ["--seed", "7", "--rank", rank, "--ranks", "3"];
        run(&[&["put", &dir, "-n", "4", "-s", "300KiB"][..], &share].concat()).ok();
    }
    assert_eq!(read_tree(&d), objs);
    run(&["put", &base, "-n", "4", "--ranks", "2"]).fails(1, "pass --seed too");
    run(&[
        "put", &base, "-n", "4", "--seed", "1", "--rank", "2", "--ranks", "2",
    ])
    .fails(1, "--rank 2: expected 0 to 1");
}

/// `put` of `n` objects of `size` in `format` named by `template` into directory `d`.
fn put_files(d: &Path, n: u32, size: &str, format: &str, template: &str) {
    run(&[
        "put",
        &format!("{}/", uri(d)),
        "-n",
        &n.to_string(),
        "-s",
        size,
        "-o",
        format,
        "-t",
        template,
    ])
    .ok();
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

fn masked_crc32c(data: &[u8]) -> u32 {
    // Independent of the crate under test: a bitwise CRC32C (Castagnoli, reflected).
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    let crc = !crc;
    // The spec's mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[test]
fn tfrecord_output_has_correct_masked_crcs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("tf");
    put_files(&d, 2, "200000", "tfrecord", "r{}.tfrecord");
    for i in 0..2 {
        let data = std::fs::read(d.join(format!("r{i}.tfrecord"))).unwrap();
        let (mut pos, mut payload, mut records) = (0usize, 0usize, 0);
        while pos < data.len() {
            let len = u64::from_le_bytes(data[pos..pos + 8].try_into().unwrap()) as usize;
            assert_eq!(
                read_u32(&data[pos + 8..]),
                masked_crc32c(&data[pos..pos + 8])
            );
            let body = &data[pos + 12..pos + 12 + len];
            assert_eq!(read_u32(&data[pos + 12 + len..]), masked_crc32c(body));
            pos += 16 + len;
            payload += len;
            records += 1;
        }
        assert_eq!(pos, data.len());
        assert_eq!(payload, 200_000);
        assert_eq!(records, 4); // 64 KiB records
    }
    // A TensorFlow-compatible reader (PyPI `tfrecord`) reads the records back, and the CRCs
    // check out with an independent CRC32C (PyPI `crc32c`).
    let script = format!(
        r#"
import crc32c
from tfrecord.reader import tfrecord_iterator
def masked(b):
    c = crc32c.crc32c(b)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
path = {:?}
lengths = [len(r) for r in tfrecord_iterator(path)]
raw = open(path, "rb").read()
pos = 0
while pos < len(raw):
    n = int.from_bytes(raw[pos:pos + 8], "little")
    assert int.from_bytes(raw[pos + 8:pos + 12], "little") == masked(raw[pos:pos + 8])
    assert int.from_bytes(raw[pos + 12 + n:pos + 16 + n], "little") == masked(raw[pos + 12:pos + 12 + n])
    pos += 16 + n
print(lengths)
"#,
        d.join("r1.tfrecord").display().to_string()
    );
    if let Some(out) = python_with(&["tfrecord", "crc32c"], &script) {
        assert_eq!(out.trim(), "[65536, 65536, 65536, 3392]");
    }
}

#[test]
fn npz_output_is_a_valid_zip_of_one_npy() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("npz");
    run(&[
        "put",
        &format!("{}/", uri(&d)),
        "-n",
        "1",
        "-s",
        "100000",
        "-o",
        "npz",
        "-t",
        "x.npz",
        "--seed",
        "3",
    ])
    .ok();
    let path = d.join("x.npz");
    let z = std::fs::read(&path).unwrap();
    // Local header, stored entry named data.npy with sizes in the data descriptor.
    assert_eq!(&z[..4], b"PK\x03\x04");
    assert_eq!(u16::from_le_bytes([z[8], z[9]]), 0, "stored");
    let name_len = u16::from_le_bytes([z[26], z[27]]) as usize;
    assert_eq!(&z[30..30 + name_len], b"data.npy");
    let npy_start = 30 + name_len;
    let npy = &z[npy_start..];
    assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let header = std::str::from_utf8(&npy[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'descr': '|u1'") && header.contains("'shape': (100000,)"),
        "{header}"
    );
    // End of central directory: one entry; the central directory's CRC and size match.
    let eocd = z.len() - 22;
    assert_eq!(&z[eocd..eocd + 4], b"PK\x05\x06");
    let cd = read_u32(&z[eocd + 16..]) as usize;
    assert_eq!(&z[cd..cd + 4], b"PK\x01\x02");
    let size = read_u32(&z[cd + 24..]) as usize;
    assert_eq!(size, 10 + hlen + 100_000);
    let npy_file = &z[npy_start..npy_start + size];
    assert_eq!(read_u32(&z[cd + 16..]), crc32fast::hash(npy_file));

    // numpy.load reads it.
    let script = format!(
        "import numpy; a = numpy.load({:?})['data']; assert a.dtype == numpy.uint8 and a.shape == (100000,); print(int(a[:64].sum()))",
        path.display().to_string()
    );
    if let Some(out) = python_with(&["numpy"], &script) {
        let sum: u64 = npy_file[10 + hlen..10 + hlen + 64]
            .iter()
            .map(|&b| u64::from(b))
            .sum();
        assert_eq!(out.trim(), sum.to_string());
    }
}

#[test]
fn chunk_size_changes_memory_not_content() {
    let t = tempfile::tempdir().unwrap();
    let put = |dir: &str, extra: &[&str]| {
        let d = t.path().join(dir);
        let prefix = format!("{}/", uri(&d));
        let mut args = vec![
            "put", &prefix, "-n", "3", "-s", "300KiB", "--seed", "9", "-x", "2",
        ];
        args.extend_from_slice(extra);
        run(&args).ok();
        read_tree(&d)
    };
    let default = put("default", &[]);
    assert_eq!(default.len(), 3);
    assert_eq!(put("small", &["--chunk-size", "64KiB"]), default);
    assert_eq!(put("odd", &["--chunk-size", "100000"]), default);
    let d = format!("{}/", uri(&t.path().join("bad")));
    run(&["put", &d, "--chunk-size", "0"]).fails(2, "at least 1 byte");
    run(&["put", &d, "--chunk-size", "2GiB"]).fails(1, "--chunk-size");
}

#[test]
fn dedup_and_compress_ratios_come_out_as_asked() {
    let t = tempfile::tempdir().unwrap();
    for (dedup, compress) in [(1u64, 1u64), (4, 1), (1, 3), (2, 4)] {
        let d = t.path().join(format!("r{dedup}-{compress}"));
        run(&[
            "put",
            &format!("{}/", uri(&d)),
            "-n",
            "4",
            "-s",
            "4MiB",
            "-d",
            &dedup.to_string(),
            "-x",
            &compress.to_string(),
        ])
        .ok();
        let (mut blocks, mut distinct, mut raw, mut packed) =
            (0usize, HashSet::new(), 0usize, 0usize);
        for (_, data) in read_tree(&d) {
            for b in data.chunks(64 * 1024) {
                blocks += 1;
                distinct.insert(b.to_vec());
                raw += b.len();
                packed += zstd::bulk::compress(b, 3).unwrap().len();
            }
        }
        let dedup_ratio = blocks as f64 / distinct.len() as f64;
        let compress_ratio = raw as f64 / packed as f64;
        let near = |got: f64, want: u64| (got - want as f64).abs() / (want as f64) < 0.1;
        assert!(
            near(dedup_ratio, dedup),
            "dedup {dedup}: measured {dedup_ratio:.2}"
        );
        assert!(
            near(compress_ratio, compress),
            "compress {compress}: measured {compress_ratio:.2}"
        );
    }
}

#[test]
fn progress_renders_under_a_pseudo_terminal() {
    let script = std::process::Command::new("script")
        .arg("--version")
        .output();
    assert!(
        script.is_ok_and(|o| o.status.success()),
        "`script` (util-linux) is needed to give s3-cli a terminal; install util-linux"
    );
    let t = tempfile::tempdir().unwrap();
    let line = format!(
        "{} put {}/ -n 40 -s 2MiB -j 2",
        env!("CARGO_BIN_EXE_s3-cli"),
        uri(&t.path().join("p"))
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("ETA") && text.contains("/40 objects"),
        "no progress bar in: {text}"
    );
    assert!(text.contains("wrote 40 objects, 80.0 MiB"), "{text}");
    // Not a terminal: only the summary line.
    let r = run(&[
        "put",
        &format!("{}/", uri(&t.path().join("q"))),
        "-n",
        "3",
        "-s",
        "1k",
    ])
    .ok();
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("ETA"));
}

#[test]
fn tfrecord_index_and_verify_local_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("tf");
    put_files(&d, 1, "300000", "tfrecord", "d.tfrecord");
    let f = d.join("d.tfrecord");
    let idx = d.join("d.tfrecord.idx");
    // 64 KiB records: four whole, one of the rest.
    let want = "0 65552\n65552 65552\n131104 65552\n196656 65552\n262208 37872\n";
    let r = run(&["tfrecord", "index", f.to_str().unwrap()]).ok();
    assert!(
        r.stderr.contains("5 records") && r.stderr.contains("d.tfrecord.idx"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&idx).unwrap(), want);
    // The tfrecord package's tfrecord2idx agrees byte for byte.
    let py_idx = t.path().join("py.idx");
    let script = format!(
        "from tfrecord.tools.tfrecord2idx import create_index\ncreate_index({:?}, {:?})",
        f.display().to_string(),
        py_idx.display().to_string()
    );
    if python_with(&["tfrecord"], &script).is_some() {
        assert_eq!(std::fs::read_to_string(&py_idx).unwrap(), want);
    }
    // To stdout, from a file:// URI, with data CRCs checked; and to an explicit path.
    let out = run(&["tfrecord", "index", "--verify", "-o", "-", &uri(&f)])
        .ok()
        .out();
    assert_eq!(out, want);
    let other = t.path().join("other.idx");
    run(&[
        "tfrecord",
        "index",
        &uri(&f),
        "--out",
        other.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&other).unwrap(), want);
    let r = run(&["tfrecord", "verify", f.to_str().unwrap()]).ok();
    assert!(
        r.stderr.contains("verified") && r.stderr.contains("5 records"),
        "{}",
        r.stderr
    );
    let json = run(&["--json", "tfrecord", "verify", f.to_str().unwrap()])
        .ok()
        .out();
    assert!(json.contains("\"records\":5,\"bytes\":300080"), "{json}");

    // A flipped bit in record 2's data: verify names its offset; plain indexing does not
    // read data, so it still succeeds.
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[131_104 + 12 + 500] ^= 0x20;
    std::fs::write(&f, &bytes).unwrap();
    run(&["tfrecord", "verify", f.to_str().unwrap()])
        .fails(1, "bad data CRC at offset 131104 (record 2)");
    run(&["tfrecord", "index", "--verify", f.to_str().unwrap()])
        .fails(1, "bad data CRC at offset 131104");
    run(&["tfrecord", "index", "-o", "-", f.to_str().unwrap()]).ok();
    // Truncated in the last record.
    std::fs::write(&f, &bytes[..300_000]).unwrap();
    run(&["tfrecord", "index", f.to_str().unwrap()])
        .fails(1, "truncated record at offset 262208 (record 4)");
    // Not TFRecord at all.
    std::fs::write(&f, b"hello, this is text\n".repeat(10)).unwrap();
    run(&["tfrecord", "verify", f.to_str().unwrap()]).fails(1, "bad length CRC at offset 0");
    // Empty: an empty index (as tfrecord2idx), but not a valid file.
    std::fs::write(&f, b"").unwrap();
    run(&["tfrecord", "index", f.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&idx).unwrap(), "");
    run(&["tfrecord", "verify", f.to_str().unwrap()]).fails(1, "empty file at offset 0");
    run(&["tfrecord", "verify", d.join("missing").to_str().unwrap()]).fails(1, "missing");
}

#[test]
fn remote_globs_select_objects_for_ls_get_download_cp_and_rm() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    write_tree(&store, &sample_tree());
    // A key that holds a glob character itself is taken as it is when it exists.
    write_tree(&store, &[("lit*.txt", b"literal".to_vec())]);
    let base = uri(&store);
    let names = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.rsplit(&base).next().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // `*` stays within one level, `**` descends; prefixes show when their name matches.
    let ls = run(&["ls", &format!("{base}/*.log")]).ok().out();
    assert_eq!(names(&ls), ["/a.log"]);
    let ls = run(&["ls", &format!("{base}/**/*.log")]).ok().out();
    assert_eq!(names(&ls), ["/a.log", "/sub/c.log"]);
    let ls = run(&["ls", &format!("{base}/s*")]).ok().out();
    assert_eq!(names(&ls), ["/sub/"]);
    let n = run(&["ls", "-c", &format!("{base}/{{a,b}}.*")]).ok().out();
    assert_eq!(n.trim(), "2");

    // download and get write each match under its name below the glob's directory.
    let dl = t.path().join("dl");
    let r = run(&["download", &format!("{base}/sub/**"), dl.to_str().unwrap()]).ok();
    assert!(r.stderr.contains("downloaded 2 objects"), "{}", r.stderr);
    let want: Vec<_> = read_tree(&store.join("sub"));
    assert_eq!(read_tree(&dl), want);
    let got = t.path().join("got");
    run(&["get", &format!("{base}/*.txt"), got.to_str().unwrap()]).ok();
    assert_eq!(
        read_tree(&got),
        [
            ("b.txt".to_owned(), bytes(5000, 2)),
            ("lit*.txt".to_owned(), b"literal".to_vec())
        ]
    );
    // The literal key, which exists, is one object (to stdout), not a glob.
    let lit = run(&["get", &format!("{base}/lit*.txt")]).ok();
    assert_eq!(lit.stdout, b"literal");
    run(&["get", &format!("{base}/*.nothing"), got.to_str().unwrap()])
        .fails(1, "the glob matches no objects");
    run(&["get", "--offset", "1", &format!("{base}/*.txt")]).fails(1, "glob");

    // cp copies the matches into DEST as a prefix, without -r.
    let copy = t.path().join("copy");
    let r = run(&[
        "cp",
        &format!("{base}/**/*.{{log,bin}}"),
        &format!("{}/", uri(&copy)),
    ])
    .ok();
    assert!(r.stderr.contains("copied 4 objects"), "{}", r.stderr);
    let mut copied: Vec<String> = read_tree(&copy).into_iter().map(|(n, _)| n).collect();
    copied.sort();
    assert_eq!(
        copied,
        ["a.log", "empty.bin", "sub/c.log", "sub/deeper/d.bin"]
    );

    // rm deletes the matches only.
    let r = run(&["rm", &format!("{}/**/*.log", uri(&copy))]).ok();
    assert!(r.stderr.contains("deleted 2 objects"), "{}", r.stderr);
    let mut left: Vec<String> = read_tree(&copy).into_iter().map(|(n, _)| n).collect();
    left.sort();
    assert_eq!(left, ["empty.bin", "sub/deeper/d.bin"]);
}

#[test]
fn sync_copies_only_what_is_missing_different_or_newer() {
    use std::time::{Duration, SystemTime};
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("dst");
    write_tree(&src, &sample_tree());
    let (s, d) = (format!("{}/", uri(&src)), format!("{}/", uri(&dst)));
    let r = run(&["sync", &s, &d]).ok();
    assert!(r.stderr.contains("6 copied, 0 up to date"), "{}", r.stderr);
    assert_eq!(read_tree(&dst), read_tree(&src));
    // Nothing changed: nothing copied.
    let r = run(&["sync", &s, &d]).ok();
    assert!(r.stderr.contains("0 copied, 6 up to date"), "{}", r.stderr);

    // Same size, newer source: copied, unless --size-only. A new file and a bigger one:
    // copied either way. A file only DEST has stays without --delete.
    // (DEST's copy is made an hour old: the source, rewritten now, is newer.)
    std::fs::write(src.join("a.log"), bytes(100, 9)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(dst.join("a.log"))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    std::fs::write(src.join("sub/new.txt"), b"new").unwrap();
    std::fs::write(src.join("b.txt"), bytes(5001, 2)).unwrap();
    std::fs::write(dst.join("only-dest.txt"), b"x").unwrap();
    let r = run(&["sync", "--size-only", "--dry-run", &s, &d]).ok();
    let plan = r.out();
    assert_eq!(plan.lines().count(), 2, "{plan}");
    assert!(plan.contains("b.txt (size differs)") && plan.contains("sub/new.txt (new)"));
    let r = run(&["sync", "--dry-run", "--delete", &s, &d]).ok();
    let plan = r.out();
    assert!(plan.contains("a.log (newer)"), "{plan}");
    assert!(plan.contains(&format!("delete {d}only-dest.txt")), "{plan}");
    assert_eq!(
        read_tree(&dst.join("sub")).len(),
        2,
        "a dry run changes nothing"
    );
    let r = run(&["sync", &s, &d]).ok();
    assert!(
        r.stderr.contains("3 copied, 4 up to date, 0 deleted"),
        "{}",
        r.stderr
    );
    assert!(dst.join("only-dest.txt").exists());
    let r = run(&["sync", "--delete", &s, &d]).ok();
    assert!(
        r.stderr.contains("0 copied, 7 up to date, 1 deleted"),
        "{}",
        r.stderr
    );
    assert_eq!(read_tree(&dst), read_tree(&src));
    // An empty or mistyped SRC is an error, never a --delete of everything in DEST.
    let r = run(&["sync", "--delete", &format!("{}/typo/", uri(&src)), &d]);
    r.fails(1, "nothing to sync under");
    assert_eq!(read_tree(&dst), read_tree(&src));

    // A glob source: only what it takes is synced, and --delete touches only names the
    // glob would take (d.bin and the .txt files stay).
    let logs = t.path().join("logs");
    write_tree(
        &logs,
        &[("old.log", b"old".to_vec()), ("keep.txt", b"k".to_vec())],
    );
    let r = run(&[
        "sync",
        "--delete",
        &format!("{}/**/*.log", uri(&src)),
        &format!("{}/", uri(&logs)),
    ])
    .ok();
    assert!(
        r.stderr.contains("2 copied, 0 up to date, 1 deleted"),
        "{}",
        r.stderr
    );
    let names: Vec<String> = read_tree(&logs).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a.log", "keep.txt", "sub/c.log"]);
}
