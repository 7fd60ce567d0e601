//! Read every object under a `file://` URI with bounded concurrency and report what was
//! read: `objects=N bytes=M` on stdout. `cargo xtask bench file` times it against `cat`.
//! The listing streams: reads start before it finishes.
//!
//! ```text
//! cargo run --release -p s3dlio-store-fs --example read_tree -- file:///data/train/ [-j 4] [--stream]
//! ```
//!
//! By default each object is read whole into one buffer (`GetResult::bytes`); with
//! `--stream` it is consumed chunk by chunk (`GetResult::into_stream`), as `cat` does.

use std::sync::Arc;

use futures::TryStreamExt;
use s3dlio_store_core::{list_stream, GetOptions, ListItem, ListOptions, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut uri = None;
    let mut jobs = 4usize;
    let mut streamed = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-j" | "--jobs" => {
                let v = args.next().ok_or("-j needs a number")?;
                jobs = v
                    .parse()
                    .map_err(|_| format!("-j: '{v}' is not a number"))?;
            }
            "--stream" => streamed = true,
            _ if uri.is_none() => uri = Some(a),
            other => return Err(format!("unexpected argument '{other}'").into()),
        }
    }
    let uri = uri.ok_or("usage: read_tree file:///dir/ [-j N] [--stream]")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (objects, bytes) = rt.block_on(async move {
        let mut registry = Registry::new();
        s3dlio_store_fs::register(&mut registry);
        let (store, prefix) = registry.resolve(&uri).await?;
        // Reads start while the listing is still streaming in.
        list_stream(Arc::clone(&store), prefix, ListOptions::recursive())
            .try_filter_map(|item| async move {
                Ok(match item {
                    ListItem::Object(m) => Some(m),
                    ListItem::Prefix(_) => None,
                })
            })
            .map_ok(|meta| {
                let store = Arc::clone(&store);
                async move {
                    let got = store.get(&meta.key, GetOptions::default()).await?;
                    let len = if streamed {
                        got.into_stream()
                            .try_fold(0u64, |n, chunk| async move { Ok(n + chunk.len() as u64) })
                            .await?
                    } else {
                        got.bytes().await?.len() as u64
                    };
                    // A reader that returned short data must not look fast.
                    if len != meta.size {
                        return Err(s3dlio_store_core::Error::other(format!(
                            "{}: listed {} bytes, read {len}",
                            store.uri_of(&meta.key),
                            meta.size,
                        )));
                    }
                    Ok(len)
                }
            })
            .try_buffer_unordered(jobs.max(1))
            .try_fold((0u64, 0u64), |(n, total), len| async move {
                Ok((n + 1, total + len))
            })
            .await
    })?;
    println!("objects={objects} bytes={bytes}");
    Ok(())
}
