//! `s3-cli` against the Azurite `cargo xtask test` starts: the az:// backend is registered
//! next to s3:// and file://, configured from the standard Azure environment.

mod common;

use common::*;
use s3dlio_store_azure::{AzureCredential, AzureOptions, AzureStore, DEV_ACCOUNT, DEV_ACCOUNT_KEY};

/// Azurite's endpoint (set by `cargo xtask test`); tests never skip.
fn endpoint() -> String {
    std::env::var("S3DLIO_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("S3DLIO_TEST_AZURITE is not set: run `cargo xtask test`, or source the env file of `cargo xtask servers`")
    })
}

/// `s3-cli` with the emulator's account in a connection string.
fn az(args: &[&str]) -> Run {
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint={};",
        endpoint()
    );
    finish(
        cmd()
            .env("AZURE_STORAGE_CONNECTION_STRING", conn)
            .args(args)
            .output()
            .expect("run s3-cli"),
    )
}

fn container(tag: &str) -> String {
    let name = bucket(tag);
    let store = AzureStore::new(
        None,
        &name,
        AzureOptions {
            account: Some(DEV_ACCOUNT.into()),
            endpoint: Some(endpoint()),
            credential: Some(AzureCredential::AccountKey(DEV_ACCOUNT_KEY.into())),
            ..AzureOptions::default()
        },
    )
    .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(store.create_container())
        .unwrap();
    name
}

#[test]
fn put_ls_get_upload_download_rm() {
    let c = container("az");
    let base = format!("az://{DEV_ACCOUNT}/{c}/");
    let t = tempfile::tempdir().unwrap();

    // Synthetic objects.
    let r = az(&["put", &format!("{base}gen/"), "-n", "5", "-s", "10KiB"]).ok();
    assert!(r.stderr.contains('5'), "{}", r.stderr);
    assert_eq!(
        az(&["ls", "-r", "-c", &format!("{base}gen/")])
            .ok()
            .out()
            .trim(),
        "5"
    );

    // A tree up, listed with a delimiter, and down again.
    let src = t.path().join("tree");
    write_tree(&src, &sample_tree());
    let r = az(&["upload", src.to_str().unwrap(), &format!("{base}in/")]).ok();
    assert!(r.stderr.contains("uploaded 6 objects"), "{}", r.stderr);
    let ls = az(&["ls", &format!("{base}in/tree/")]).ok().out();
    assert!(
        ls.contains("PRE") && ls.contains(&format!("{base}in/tree/sub/")),
        "{ls}"
    );
    let dl = t.path().join("dl");
    az(&[
        "download",
        "-r",
        &format!("{base}in/tree/"),
        dl.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(read_tree(&dl), read_tree(&src));

    // One object back with get.
    let one = t.path().join("one.bin");
    az(&[
        "get",
        &format!("{base}in/tree/sub/deeper/d.bin"),
        one.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read(&one).unwrap(), sample_tree()[4].1);

    // Remove one, then everything.
    az(&["rm", &format!("{base}in/tree/a.log")]).ok();
    assert_eq!(
        az(&["ls", "-r", "-c", &format!("{base}in/")])
            .ok()
            .out()
            .trim(),
        "5"
    );
    az(&["rm", "-r", &base]).ok();
    assert_eq!(az(&["ls", "-r", "-c", &base]).ok().out().trim(), "0");

    // Errors name the Azure code.
    az(&["stat", &format!("{base}nope")]).fails(1, "not found");
    az(&["ls", &format!("az://{DEV_ACCOUNT}/no-such-container-x/")]).fails(1, "ContainerNotFound");
}
