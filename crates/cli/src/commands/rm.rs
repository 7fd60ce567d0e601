//! `rm` / `delete`.

use futures::TryStreamExt;
use s3dlio_store_core::{ListItem, ListOptions, ObjectStore};

use super::transfer::source_glob;
use super::{CliResult, Ctx};
use crate::args::RmArgs;
use crate::patterns::{KeyFilter, KeyGlob};
use crate::progress::Progress;

/// Keys per batch delete (S3's DeleteObjects limit).
pub(super) const BATCH: usize = 1000;

/// Delete up to [`BATCH`] keys with one batch delete, each success counted on `progress` and
/// each failure printed; returns how many failed.
pub(super) async fn delete_batch(
    store: &dyn ObjectStore,
    batch: Vec<String>,
    progress: &Progress,
) -> u64 {
    let n = batch.len() as u64;
    match store.delete_many(batch.clone()).await {
        Ok(results) => {
            let mut failed = 0;
            for (key, r) in batch.iter().zip(results) {
                match r {
                    Ok(()) => progress.object_done(),
                    Err(e) => {
                        failed += 1;
                        progress.println(&format!("s3-cli: failed: {}: {e}", store.uri_of(key)));
                    }
                }
            }
            failed
        }
        Err(e) => {
            progress.println(&format!("s3-cli: failed: batch of {n} keys: {e}"));
            n
        }
    }
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> CliResult {
    let uri = ctx.location(&a.uri)?;
    let store = ctx.store(&uri).await?;
    let glob = source_glob(&*store, &uri.key).await?;
    let prefix_mode = glob.is_some()
        || a.recursive
        || a.pattern.is_some()
        || uri.key.is_empty()
        || uri.key.ends_with('/');
    if !prefix_mode {
        // Like rm(1): a missing object is an error (S3 itself would report success).
        store.head(&uri.key).await?;
        store.delete(&uri.key).await?;
        eprintln!("deleted {uri}");
        return Ok(());
    }
    let filter = KeyFilter::new(a.pattern.as_deref())?;
    // A glob is listed under its literal directory, deeper only where it can match.
    let (prefix, recursive) = KeyGlob::listing(glob.as_ref(), &uri.key, a.recursive);
    let opts = if recursive {
        ListOptions::recursive()
    } else {
        ListOptions::delimited()
    };
    let progress = Progress::objects("deleted", None);
    let mut listing = store.list(prefix, opts);
    let mut batch = Vec::with_capacity(BATCH);
    let (mut total, mut failed) = (0u64, 0u64);
    // Batches go out as the listing arrives, so deleting millions of keys needs no more
    // memory than one batch of names.
    while let Some(item) = listing.try_next().await? {
        let ListItem::Object(m) = item else { continue };
        if !filter.keeps(prefix, &m.key) || glob.as_ref().is_some_and(|g| !g.matches(&m.key)) {
            continue;
        }
        batch.push(m.key);
        if batch.len() == BATCH {
            let batch = std::mem::take(&mut batch);
            total += batch.len() as u64;
            failed += delete_batch(&*store, batch, &progress).await;
        }
    }
    if !batch.is_empty() {
        total += batch.len() as u64;
        failed += delete_batch(&*store, batch, &progress).await;
    }
    progress.finish();
    if failed > 0 {
        return Err(format!("{failed} of {total} deletes failed (listed above)").into());
    }
    if total == 0 {
        eprintln!("nothing matched under {uri}");
    }
    Ok(())
}
