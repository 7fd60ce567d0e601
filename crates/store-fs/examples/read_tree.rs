//! Read every object under a `file://` prefix, 8 reads in flight, listing included, and
//! report what was read: `objects=N bytes=B`. The reader of `cargo xtask bench`'s `file`
//! suite.
//!
//! ```text
//! cargo run --release -p s3dlio-store-fs --example read_tree -- file:///data/dir/
//! ```

use std::error::Error;

use futures::stream::TryStreamExt;
use s3dlio_store_core::{list_stream, ListItem, ListOptions, ObjectStoreExt, Registry};

/// Reads in flight: enough to keep both the page-cache copies and the task hand-offs busy.
const IN_FLIGHT: usize = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri] = args.as_slice() else {
        return Err("usage: read_tree file:///DIR/".into());
    };
    let mut registry = Registry::new();
    s3dlio_store_fs::register(&mut registry);
    let (store, prefix) = registry.resolve(uri).await?;

    let (objects, bytes) = list_stream(store.clone(), prefix, ListOptions::recursive())
        .try_filter_map(|item| async move {
            Ok(match item {
                ListItem::Object(meta) => Some(meta),
                ListItem::Prefix(_) => None,
            })
        })
        .map_ok(|meta| {
            let store = store.clone();
            async move {
                let data = store.get_bytes(&meta.key).await?;
                if data.len() as u64 != meta.size {
                    return Err(s3dlio_store_core::Error::other(format!(
                        "{}: listed {} bytes, read {}",
                        store.uri_of(&meta.key),
                        meta.size,
                        data.len()
                    )));
                }
                Ok(data.len() as u64)
            }
        })
        .try_buffer_unordered(IN_FLIGHT)
        .try_fold((0u64, 0u64), |(n, total), len| async move {
            Ok((n + 1, total + len))
        })
        .await?;
    println!("objects={objects} bytes={bytes}");
    Ok(())
}
