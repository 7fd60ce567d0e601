//! `ls` and `stat`.

use futures::TryStreamExt;
use s3dlio_store_core::{ListItem, ListOptions, ObjectMeta};

use super::{buckets, out, CliResult, Ctx};
use crate::args::{LsArgs, StatArgs};
use crate::patterns::{KeyFilter, KeyGlob};
use crate::units::{human_bytes, json_opt, json_str, rfc3339};

pub async fn ls(ctx: &Ctx, a: LsArgs) -> CliResult {
    if a.uri.eq_ignore_ascii_case("s3://") {
        // No bucket named: the buckets, as `aws s3 ls` lists them.
        return ls_buckets(ctx, &a).await;
    }
    let uri = ctx.location(&a.uri)?;
    let store = ctx.store(&uri).await?;
    let filter = KeyFilter::new(a.pattern.as_deref())?;
    // A glob lists its literal directory, deeper only where it can match; a prefix line is
    // shown when its name (without the trailing '/') matches.
    let glob = KeyGlob::parse(&uri.key)?;
    let (prefix, recursive) = KeyGlob::listing(glob.as_ref(), &uri.key, a.recursive);
    let opts = if recursive {
        ListOptions::recursive()
    } else {
        ListOptions::delimited()
    };
    let mut items = store.list(prefix, opts);
    let mut count = 0u64;
    while let Some(item) = items.try_next().await? {
        if !filter.keeps(prefix, item.name()) {
            continue;
        }
        if let Some(g) = &glob {
            if !g.matches(item.name()) && !g.matches(item.name().trim_end_matches('/')) {
                continue;
            }
        }
        count += 1;
        if a.count {
            continue;
        }
        let line = match &item {
            ListItem::Object(m) => {
                let u = store.uri_of(&m.key);
                if ctx.json {
                    format!(
                        "{{\"uri\":{},\"key\":{},\"size\":{},\"last_modified\":{},\"etag\":{}}}",
                        json_str(&u),
                        json_str(&m.key),
                        m.size,
                        json_opt(m.last_modified.map(|t| rfc3339(Some(t))).as_deref()),
                        json_opt(m.etag.as_deref())
                    )
                } else {
                    let size = if a.bytes {
                        m.size.to_string()
                    } else {
                        human_bytes(m.size)
                    };
                    format!("{size:>12}  {:<20}  {u}", rfc3339(m.last_modified))
                }
            }
            ListItem::Prefix(p) => {
                let u = store.uri_of(p);
                if ctx.json {
                    format!("{{\"uri\":{},\"prefix\":{}}}", json_str(&u), json_str(p))
                } else {
                    format!("{:>12}  {:<20}  {u}", "PRE", "")
                }
            }
        };
        out(&line)?;
    }
    if a.count {
        if ctx.json {
            out(&format!("{{\"count\":{count}}}"))?;
        } else {
            out(&count.to_string())?;
        }
    }
    Ok(())
}

/// `ls s3://`: the buckets the credentials can see, filtered by `-p`, counted by `-c`.
async fn ls_buckets(ctx: &Ctx, a: &LsArgs) -> CliResult {
    let filter = KeyFilter::new(a.pattern.as_deref())?;
    let names: Vec<String> = buckets::bucket_names(ctx)
        .await?
        .into_iter()
        .filter(|n| filter.keeps("", n))
        .collect();
    if a.count {
        return out(&if ctx.json {
            format!("{{\"count\":{}}}", names.len())
        } else {
            names.len().to_string()
        });
    }
    for name in &names {
        buckets::print_bucket(ctx, name)?;
    }
    Ok(())
}

pub async fn stat(ctx: &Ctx, a: StatArgs) -> CliResult {
    let uri = ctx.location(&a.uri)?;
    let store = ctx.store(&uri).await?;
    let m: ObjectMeta = store.head(&uri.key).await?;
    let u = store.uri_of(&m.key);
    if ctx.json {
        let meta: Vec<String> = m
            .metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        out(&format!(
            "{{\"uri\":{},\"key\":{},\"size\":{},\"last_modified\":{},\"etag\":{},\"content_type\":{},\"metadata\":{{{}}}}}",
            json_str(&u),
            json_str(&m.key),
            m.size,
            json_opt(m.last_modified.map(|t| rfc3339(Some(t))).as_deref()),
            json_opt(m.etag.as_deref()),
            json_opt(m.content_type.as_deref()),
            meta.join(",")
        ))?;
        return Ok(());
    }
    out(&format!("uri            {u}"))?;
    out(&format!(
        "size           {} ({})",
        m.size,
        human_bytes(m.size)
    ))?;
    out(&format!("last_modified  {}", rfc3339(m.last_modified)))?;
    if let Some(e) = &m.etag {
        out(&format!("etag           {e}"))?;
    }
    if let Some(c) = &m.content_type {
        out(&format!("content_type   {c}"))?;
    }
    for (k, v) in &m.metadata {
        out(&format!("metadata       {k}={v}"))?;
    }
    Ok(())
}
