//! `sync`: make DEST hold what SRC holds, copying only what is missing or differs, as
//! `aws s3 sync` and `s5cmd sync` do, on any pair of backends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use s3dlio_store_core::ObjectMeta;

use super::rm::{delete_batch, BATCH};
use super::transfer::{copy_many, glob_objects, is_dir_marker, list_objects, source_glob};
use super::{out, CliResult, Ctx};
use crate::args::SyncArgs;
use crate::patterns::{as_dir, below_dir, safe_relative};
use crate::progress::{note, Progress};
use crate::units::human_bytes;

/// Why a source object is copied, if it is.
fn reason(src: &ObjectMeta, dst: Option<&ObjectMeta>, size_only: bool) -> Option<&'static str> {
    let Some(d) = dst else {
        return Some("new");
    };
    if d.size != src.size {
        return Some("size differs");
    }
    // Whole seconds: S3 keeps times to the second, files to the nanosecond, so a file
    // uploaded within the second it was written would otherwise always look newer.
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match (src.last_modified, d.last_modified) {
        (Some(s), Some(d)) if !size_only && secs(s) > secs(d) => Some("newer"),
        _ => None,
    }
}

fn objects_noun(n: usize) -> String {
    format!("{n} object{}", if n == 1 { "" } else { "s" })
}

pub async fn sync(ctx: &Ctx, a: SyncArgs) -> CliResult {
    let SyncArgs {
        src,
        dest,
        delete,
        size_only,
        dry_run,
        jobs,
    } = a;
    let src_uri = ctx.location(&src)?;
    let dest_uri = ctx.location(&dest)?;
    let src_store = ctx.store(&src_uri).await?;
    let dst_store = ctx.store(&dest_uri).await?;

    // What SRC holds, by name below its directory (a glob's literal part, else SRC itself
    // taken as a directory).
    let glob = source_glob(&*src_store, &src_uri.key).await?;
    let (objects, base) = match &glob {
        Some(g) => (glob_objects(&*src_store, g).await?, g.dir.clone()),
        None => {
            let base = as_dir(&src_uri.key);
            (list_objects(&*src_store, &base, true).await?, base)
        }
    };
    let prefix = as_dir(&dest_uri.key);
    let local_dest = dest_uri.scheme.is_local();
    let mut sources: Vec<(ObjectMeta, String)> = Vec::with_capacity(objects.len());
    for m in objects.into_iter().filter(|m| !is_dir_marker(m)) {
        let rel = below_dir(&base, &m.key);
        // A local destination never gets a path that escapes it.
        let rel = if local_dest {
            safe_relative(rel).map_err(|e| format!("{}: {e}", src_store.uri_of(&m.key)))?
        } else {
            rel
        };
        let name = rel.to_owned();
        sources.push((m, name));
    }

    if sources.is_empty() {
        // Most likely a mistyped SRC; with --delete it would empty DEST.
        return Err(format!("nothing to sync under {src_uri}: SRC holds no objects").into());
    }

    // What DEST holds already, by the same names.
    let existing: HashMap<String, ObjectMeta> = list_objects(&*dst_store, &prefix, true)
        .await?
        .into_iter()
        .filter(|m| !is_dir_marker(m))
        .filter_map(|m| {
            let name = m.key.strip_prefix(prefix.as_str())?.to_owned();
            Some((name, m))
        })
        .collect();

    let mut copies = Vec::new();
    let mut up_to_date = 0u64;
    for (m, name) in &sources {
        match reason(m, existing.get(name), size_only) {
            Some(why) => copies.push((m.clone(), format!("{prefix}{name}"), why)),
            None => up_to_date += 1,
        }
    }
    // With --delete, what DEST has and SRC does not (for a glob source, only names the glob
    // would take: other objects under DEST are not this sync's business).
    let names: HashSet<&str> = sources.iter().map(|(_, n)| n.as_str()).collect();
    let mut stale: Vec<String> = if delete {
        existing
            .iter()
            .filter(|(name, _)| !names.contains(name.as_str()))
            .filter(|(name, _)| {
                glob.as_ref()
                    .is_none_or(|g| g.matches(&format!("{}{name}", g.dir)))
            })
            .map(|(_, m)| m.key.clone())
            .collect()
    } else {
        Vec::new()
    };
    stale.sort();

    if dry_run {
        for (m, key, why) in &copies {
            out(&format!(
                "copy {} -> {} ({why})",
                src_store.uri_of(&m.key),
                dst_store.uri_of(key)
            ))?;
        }
        for key in &stale {
            out(&format!("delete {}", dst_store.uri_of(key)))?;
        }
        note(&format!(
            "dry run: would copy {} ({}) and delete {}; {up_to_date} up to date",
            objects_noun(copies.len()),
            human_bytes(copies.iter().map(|(m, _, _)| m.size).sum()),
            objects_noun(stale.len())
        ));
        return Ok(());
    }

    let n_copies = copies.len();
    if !copies.is_empty() {
        let work = copies
            .into_iter()
            .map(|(m, key, _)| (m, Ok::<_, String>(key)))
            .collect();
        copy_many(
            src_store,
            Some(Arc::clone(&dst_store)),
            work,
            jobs,
            "synced",
        )
        .await?;
    }
    // Stale objects go only once every copy landed: a failed sync never leaves DEST with
    // less than it had.
    if !stale.is_empty() {
        let progress = Progress::objects("deleted", Some(stale.len() as u64));
        let mut failed = 0u64;
        for batch in stale.chunks(BATCH) {
            failed += delete_batch(&*dst_store, batch.to_vec(), &progress).await;
        }
        progress.finish();
        if failed > 0 {
            return Err(
                format!("{failed} of {} deletes failed (listed above)", stale.len()).into(),
            );
        }
    }
    let deleted = stale.len();
    note(&format!(
        "sync: {n_copies} copied, {up_to_date} up to date, {deleted} deleted"
    ));
    Ok(())
}
