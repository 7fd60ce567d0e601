//! `rm` / `delete`.

use futures::TryStreamExt;
use s3dlio_store_core::{ListItem, ListOptions};

use super::transfer::source_glob;
use super::{CliResult, Ctx};
use crate::args::RmArgs;
use crate::patterns::KeyFilter;
use crate::progress::Progress;

/// Keys per batch delete (S3's DeleteObjects limit).
const BATCH: usize = 1000;

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
    let (prefix, recursive) = match &glob {
        Some(g) => (g.dir.as_str(), a.recursive || g.recursive()),
        None => (uri.key.as_str(), a.recursive),
    };
    let opts = if recursive {
        ListOptions::recursive()
    } else {
        ListOptions::delimited()
    };
    let progress = Progress::objects("deleted", None);
    let mut listing = store.list(prefix, opts);
    let mut batch = Vec::with_capacity(BATCH);
    let (mut total, mut failed) = (0u64, 0u64);
    let flush = |batch: Vec<String>| {
        let store = &store;
        let progress = &progress;
        async move {
            let n = batch.len() as u64;
            let results = store.delete_many(batch.clone()).await;
            let mut bad = 0u64;
            match results {
                Ok(rs) => {
                    for (key, r) in batch.iter().zip(rs) {
                        match r {
                            Ok(()) => progress.object_done(),
                            Err(e) => {
                                bad += 1;
                                progress.println(&format!(
                                    "s3-cli: failed: {}: {e}",
                                    store.uri_of(key)
                                ));
                            }
                        }
                    }
                }
                Err(e) => {
                    bad = n;
                    progress.println(&format!("s3-cli: failed: batch of {n} keys: {e}"));
                }
            }
            (n, bad)
        }
    };
    // Batches go out as the listing arrives, so deleting millions of keys needs no more
    // memory than one batch of names.
    while let Some(item) = listing.try_next().await? {
        let ListItem::Object(m) = item else { continue };
        if !filter.keeps(prefix, &m.key) || glob.as_ref().is_some_and(|g| !g.matches(&m.key)) {
            continue;
        }
        batch.push(m.key);
        if batch.len() == BATCH {
            let (n, bad) = flush(std::mem::take(&mut batch)).await;
            total += n;
            failed += bad;
        }
    }
    if !batch.is_empty() {
        let (n, bad) = flush(batch).await;
        total += n;
        failed += bad;
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
