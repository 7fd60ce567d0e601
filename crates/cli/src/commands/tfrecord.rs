//! `tfrecord index URI [--out PATH] [--verify]` and `tfrecord verify URI`.

use std::io::Write as _;

use bytes::Bytes;
use s3dlio_store_core::{ObjectStoreExt, ObjectUri};
use s3dlio_tfrecord_index::{
    default_index_path, index_file, index_object, write_index, IndexEntry, IndexOptions,
};

use super::{exit_quietly, out, CliError, CliResult, Ctx};
use crate::args::TfrecordCommand;
use crate::units::json_str;

pub async fn run(ctx: &Ctx, c: TfrecordCommand) -> CliResult {
    match c {
        TfrecordCommand::Index(a) => {
            let uri = ctx.location(&a.uri)?;
            let opts = IndexOptions {
                verify_data: a.verify,
                ..IndexOptions::default()
            };
            let entries = index(ctx, &uri, opts).await?;
            let mut text = Vec::with_capacity(entries.len() * 16);
            write_index(&entries, &mut text).map_err(|e| CliError(e.to_string()))?;
            let dest = match (a.out.as_deref(), uri.local_path()) {
                (Some("-"), _) | (None, None) => None,
                (Some(o), _) => Some(o.to_owned()),
                (None, Some(p)) => Some(default_index_path(p).display().to_string()),
            };
            let shown = match &dest {
                None => {
                    let mut o = std::io::stdout().lock();
                    match o.write_all(&text).and_then(|()| o.flush()) {
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit_quietly(),
                        r => r.map_err(|e| CliError(format!("writing to stdout: {e}")))?,
                    }
                    "stdout".to_owned()
                }
                Some(d) => write_out(ctx, d, text).await?,
            };
            report(ctx, &uri, &entries, "indexed", Some(&shown))
        }
        TfrecordCommand::Verify(a) => {
            let uri = ctx.location(&a.uri)?;
            let entries = index(ctx, &uri, IndexOptions::verify()).await?;
            report(ctx, &uri, &entries, "verified", None)
        }
    }
}

/// The index of `uri`: a local file read directly (bodies seeked over unless verifying),
/// anything else with one streaming GET.
async fn index(ctx: &Ctx, uri: &ObjectUri, opts: IndexOptions) -> CliResult<Vec<IndexEntry>> {
    let r = match uri.local_path() {
        Some(p) if ctx.observers.is_none() => {
            tokio::task::spawn_blocking(move || index_file(p, opts))
                .await
                .map_err(|e| CliError(format!("{uri}: {e}")))?
        }
        _ => {
            let store = ctx.store(uri).await?;
            index_object(store.as_ref(), &uri.key, opts).await
        }
    };
    // The errors name the file or object themselves.
    r.map_err(|e| CliError(e.to_string()))
}

/// Write the index text to a local path or an object URI; returns how to name it.
async fn write_out(ctx: &Ctx, dest: &str, text: Vec<u8>) -> CliResult<String> {
    let d = ctx.location(dest)?;
    if let Some(p) = d.local_path() {
        std::fs::write(&p, &text).map_err(|e| CliError(format!("{}: {e}", p.display())))?;
        return Ok(p.display().to_string());
    }
    let store = ctx.store(&d).await?;
    store.put_bytes(&d.key, Bytes::from(text)).await?;
    Ok(d.to_string())
}

fn report(
    ctx: &Ctx,
    uri: &ObjectUri,
    entries: &[IndexEntry],
    what: &str,
    index: Option<&str>,
) -> CliResult {
    let bytes = entries.last().map_or(0, IndexEntry::end);
    if ctx.json {
        // On stderr when the index itself went to stdout.
        let line = format!(
            "{{\"uri\":{},\"records\":{},\"bytes\":{bytes},\"index\":{}}}",
            json_str(&uri.to_string()),
            entries.len(),
            index.map_or_else(|| "null".to_owned(), json_str)
        );
        if index == Some("stdout") {
            eprintln!("{line}");
            return Ok(());
        }
        return out(&line);
    }
    let to = index.map_or_else(String::new, |i| format!(", index written to {i}"));
    eprintln!(
        "s3-cli: {what} {uri}: {} records, {bytes} bytes{to}",
        entries.len()
    );
    Ok(())
}
