//! `s3-cli` against direct:// (O_DIRECT), in a directory on the disk the build is on.

mod common;

use common::*;

#[test]
fn put_ls_get_with_o_direct() {
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-direct");
    std::fs::create_dir_all(&base).unwrap();
    let t = tempfile::tempdir_in(&base).unwrap();
    let fs = s3dlio_directio::filesystem_of(t.path()).unwrap_or_default();
    if !s3dlio_directio::supports_o_direct(t.path()).unwrap() {
        eprintln!(
            "SKIPPED: {} ({fs}) refuses O_DIRECT; the refusal itself is tested in crates/directio",
            t.path().display()
        );
        return;
    }
    eprintln!("running in {} ({fs})", t.path().display());
    let prefix = format!("direct://{}/data/", t.path().display());
    // Sizes that are not a multiple of any block size.
    run(&["put", &prefix, "-n", "3", "-s", "10001"]).ok();
    let listed = run(&["ls", "-r", "--bytes", &prefix]).ok().out();
    assert_eq!(listed.matches("10001").count(), 3, "{listed}");
    let count = run(&["ls", "-r", "-c", &prefix]).ok().out();
    assert_eq!(count.trim(), "3");
    let file = std::fs::read_dir(t.path().join("data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let name = file.file_name().into_string().unwrap();
    let on_disk = std::fs::read(file.path()).unwrap();
    assert_eq!(on_disk.len(), 10001, "the file ends at the true size");
    let got = run(&["get", &format!("{prefix}{name}")]).ok();
    assert_eq!(got.stdout, on_disk);
    let part = run(&[
        "get",
        &format!("{prefix}{name}"),
        "--offset",
        "4095",
        "--length",
        "5000",
    ])
    .ok();
    assert_eq!(part.stdout, on_disk[4095..9095]);
    run(&["rm", &format!("{prefix}{name}")]).ok();
    assert_eq!(run(&["ls", "-r", "-c", &prefix]).ok().out().trim(), "2");
}
