//! Security properties of `s3-cli` against the servers `cargo xtask test` starts:
//! credentials never reach output, logs (at the most verbose level) or op-logs, whether
//! the command works or fails; and `download`/`cp` never write outside the destination,
//! whatever the object keys say.

mod common;

use std::path::Path;

use common::*;
use s3dlio_store_azure::{DEV_ACCOUNT, DEV_ACCOUNT_KEY};

/// Everything a run left where a secret could leak: stdout, stderr, the op-log file.
fn assert_no_secret(what: &str, r: &Run, oplog: &Path, secrets: &[&str]) {
    let log = std::fs::read(oplog).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    let out = r.out();
    for s in secrets {
        for (place, text) in [
            ("stdout", out.as_str()),
            ("stderr", r.stderr.as_str()),
            ("op-log", &*log),
        ] {
            assert!(!text.contains(s), "{what}: the secret appears in {place}");
        }
    }
}

#[test]
fn credentials_never_appear_in_output_logs_or_op_logs() {
    let s3 = S3::seaweedfs();
    let t = tempfile::tempdir().unwrap();
    let b = bucket("secrets");
    s3.run(&["create-bucket", &b]).ok();
    let base = format!("s3://{b}/p/");
    let oplog = t.path().join("ops.tsv");
    let traced = |c: &mut std::process::Command| {
        // The most verbose logs every crate gives, ours and the SDKs'.
        c.env("RUST_LOG", "trace")
            .arg("-vv")
            .arg("--op-log")
            .arg(&oplog);
    };

    // A working session: put, list, get, remove.
    for args in [
        vec!["put", base.as_str(), "-n", "3", "-s", "2KiB"],
        vec!["ls", "-r", base.as_str()],
        vec!["get", "-r", base.as_str()],
        vec!["rm", "-r", base.as_str()],
    ] {
        let mut c = s3.cmd();
        traced(&mut c);
        let r = finish(c.args(&args).output().unwrap()).ok();
        assert!(!r.stderr.is_empty(), "trace logging produced nothing");
        assert_no_secret(&format!("{args:?}"), &r, &oplog, &[&s3.secret]);
    }

    // A rejected key: the error names the problem, not the secret.
    let wrong = "WrongSecretKeyThatMustNotLeak0123456789";
    let mut c = s3.cmd();
    traced(&mut c);
    c.env("AWS_SECRET_ACCESS_KEY", wrong);
    let r = finish(c.args(["ls", &base]).output().unwrap());
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("SignatureDoesNotMatch") || r.stderr.contains("unauthenticated"));
    assert_no_secret("wrong key", &r, &oplog, &[wrong, &s3.secret]);
    s3.run(&["delete-bucket", &format!("s3://{b}")]).ok();

    // Azure: the account key inside a connection string, working and failing.
    let endpoint = std::env::var("S3DLIO_TEST_AZURITE").expect("run `cargo xtask test`");
    let container = bucket("azsecrets");
    for (key, works) in [
        (DEV_ACCOUNT_KEY, true),
        ("bm90IHRoZSBrZXkgYXQgYWxsIQ==", false),
    ] {
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"
        );
        let mut c = cmd();
        traced(&mut c);
        c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
        let r = finish(
            c.args(["ls", &format!("az://{DEV_ACCOUNT}/{container}/")])
                .output()
                .unwrap(),
        );
        // The container does not exist: both fail, one as not found, one unauthenticated.
        assert_ne!(r.code, 0);
        if works {
            assert!(r.stderr.contains("not found"), "{}", r.stderr);
        }
        assert_no_secret("azure", &r, &oplog, &[key]);
    }
}

#[test]
fn download_and_cp_never_write_outside_the_destination_for_any_key() {
    // moto keeps keys exactly as sent, `..` and all.
    let s3 = S3::moto();
    let b = bucket("hostile");
    s3.run(&["create-bucket", &b]).ok();
    let t = tempfile::tempdir().unwrap();
    let payload = t.path().join("payload");
    std::fs::write(&payload, b"attack").unwrap();
    let hostile = [
        "p/../escape-1",
        "p/../../escape-2",
        "p/a/../../../escape-3",
        "p/./../escape-4",
        "p//../escape-5",
    ];
    for key in hostile.iter().chain(&["p/ok/fine.txt"]) {
        s3.run(&[
            "upload",
            payload.to_str().unwrap(),
            &format!("s3://{b}/{key}"),
        ])
        .ok();
    }
    let listed = s3.run(&["ls", "-r", &format!("s3://{b}/p/")]).ok().out();
    let stored = hostile.iter().filter(|k| listed.contains(*k)).count();
    assert!(
        stored >= 3,
        "the server kept too few hostile keys:\n{listed}"
    );

    // dest sits two levels down, so every escape would land inside `t`.
    let dest = t.path().join("x/y/dest");
    std::fs::create_dir_all(&dest).unwrap();
    let r = s3.run(&[
        "download",
        "-r",
        &format!("s3://{b}/p/"),
        dest.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "hostile keys must fail, not be written");
    let cp_dest = t.path().join("x/y/cpdest");
    std::fs::create_dir_all(&cp_dest).unwrap();
    let r2 = s3.run(&[
        "cp",
        "-r",
        &format!("s3://{b}/p/"),
        &format!("file://{}/", cp_dest.display()),
    ]);
    assert_ne!(r2.code, 0);

    // Only the harmless object arrived, each inside its destination; nothing elsewhere.
    assert_eq!(std::fs::read(dest.join("ok/fine.txt")).unwrap(), b"attack");
    assert_eq!(
        std::fs::read(cp_dest.join("ok/fine.txt")).unwrap(),
        b"attack"
    );
    let mut found = Vec::new();
    let mut stack = vec![t.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p.strip_prefix(t.path()).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        ["payload", "x/y/cpdest/ok/fine.txt", "x/y/dest/ok/fine.txt"],
        "files outside the destinations"
    );
    s3.run(&["rm", "-r", &format!("s3://{b}/")]).ok();
    s3.run(&["delete-bucket", &format!("s3://{b}")]).ok();
}
