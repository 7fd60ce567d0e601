//! `put`: N objects of synthetic data, generated as they are written.

use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use s3dlio_store_core::{ObjectStore, PutOptions};

use super::{run_batch, CliError, CliResult, Ctx};
use crate::args::{DataGenMode, ObjectType, PutArgs};
use crate::datagen::{check_size, object_len, rank_share, DataSpec, Format, ObjectGen, Payload};
use crate::progress::Progress;

/// Largest generation step: memory per object in flight stays bounded.
pub const MAX_CHUNK_SIZE: u64 = 1 << 30;

/// The default name template: index, then total.
pub const DEFAULT_TEMPLATE: &str = "object_{}_of_{}.dat";

/// `template` with its first `{}` replaced by `index` and its second by `total`.
pub fn render(template: &str, index: u64, total: u64) -> String {
    template
        .replacen("{}", &index.to_string(), 1)
        .replacen("{}", &total.to_string(), 1)
}

/// Split `PREFIX` into a prefix and a template: a last segment holding `{}` is the template
/// (`s3://b/data-{}.bin`), else `-t` or the default applies.
pub fn split_template(prefix: &str, template: Option<&str>) -> Result<(String, String), String> {
    let (dir, last) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    if last.contains("{}") {
        if template.is_some() {
            return Err(format!(
                "{prefix} already holds a '{{}}' template; drop -t or the template in PREFIX"
            ));
        }
        return Ok((format!("{dir}/"), last.to_owned()));
    }
    let t = template.unwrap_or(DEFAULT_TEMPLATE);
    if t.contains('/') && t.split('/').any(|s| s.is_empty() || s == "..") {
        return Err(format!("template '{t}' has an empty or '..' path segment"));
    }
    Ok((prefix.to_owned(), t.to_owned()))
}

async fn write_one(
    store: &dyn ObjectStore,
    key: &str,
    gen: ObjectGen,
    mode: DataGenMode,
    p: &Progress,
) -> Result<(), CliError> {
    match mode {
        DataGenMode::SinglePass => {
            let data = tokio::task::spawn_blocking(move || gen.into_bytes())
                .await
                .map_err(|e| CliError(format!("data generation failed: {e}")))??;
            let n = data.len() as u64;
            store.put(key, data, PutOptions::default()).await?;
            p.add_bytes(n);
        }
        DataGenMode::Streaming => {
            let mut w = store.writer(key, PutOptions::default()).await?;
            let mut gen = Some(gen);
            while let Some(mut g) = gen.take() {
                let step = tokio::task::spawn_blocking(move || {
                    let c = g.next_chunk();
                    (g, c)
                })
                .await;
                let (g, chunk) = match step {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(CliError(format!("data generation failed: {e}")));
                    }
                };
                let Some(chunk) = chunk else { break };
                let n = chunk.len() as u64;
                if let Err(e) = w.write(chunk).await {
                    let _ = w.abort().await;
                    return Err(e.into());
                }
                p.add_bytes(n);
                gen = Some(g);
            }
            w.complete().await?;
        }
    }
    Ok(())
}

pub async fn put(ctx: &Ctx, a: PutArgs) -> CliResult {
    let format = match a.object_type {
        ObjectType::Raw => Format::Raw,
        ObjectType::Npz => Format::Npz,
        ObjectType::Tfrecord => Format::TfRecord,
    };
    check_size(format, a.size)?;
    if a.chunk_size == 0 || a.chunk_size > MAX_CHUNK_SIZE {
        return Err(format!(
            "--chunk-size {}: expected 1 byte to {} bytes (1 GiB)",
            a.chunk_size, MAX_CHUNK_SIZE
        )
        .into());
    }
    if a.rank >= a.ranks {
        return Err(format!(
            "--rank {}: expected 0 to {} (--ranks {})",
            a.rank,
            a.ranks - 1,
            a.ranks
        )
        .into());
    }
    if a.ranks > 1 && a.seed.is_none() {
        return Err(format!(
            "--ranks {}: pass --seed too, so every rank generates the same data set",
            a.ranks
        )
        .into());
    }
    let seed = a
        .seed
        .unwrap_or_else(|| rand::rngs::StdRng::from_os_rng().next_u64());
    tracing::info!(
        seed,
        "put: data seed (pass --seed {seed} to repeat this data)"
    );
    let spec = DataSpec {
        seed,
        dedup: a.dedup,
        compress: a.compress,
    };
    spec.validate()?;
    let (prefix, template) = split_template(&a.prefix, a.template.as_deref())?;
    let mut uri = ctx.location(&prefix)?;
    if !uri.key.is_empty() && !uri.key.ends_with('/') {
        uri.key.push('/');
    }
    if a.create_bucket {
        super::buckets::ensure_bucket(ctx, &uri).await?;
    }
    let store: Arc<dyn ObjectStore> = ctx.store(&uri).await?;
    let n = a.num;
    let per_object = object_len(format, a.size);
    let mine = rank_share(n, a.rank, a.ranks).count() as u64;
    let progress = Progress::bytes("wrote", Some(mine), per_object.checked_mul(mine));
    let p = &progress;
    let base = uri.key.clone();
    // Indices are produced lazily and `jobs` objects are in flight: nothing scales with N.
    run_batch(rank_share(n, a.rank, a.ranks), a.jobs, p, "objects", |i| {
        let store = Arc::clone(&store);
        let key = format!("{base}{}", render(&template, i, n));
        let mode = a.data_gen_mode;
        let chunk = usize::try_from(a.chunk_size).unwrap_or(usize::MAX);
        async move {
            let gen = ObjectGen::new(Payload::new(spec, i, a.size), format, chunk);
            write_one(&*store, &key, gen, mode, p)
                .await
                .map_err(|e| (store.uri_of(&key), e))?;
            p.object_done();
            Ok(())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(render(DEFAULT_TEMPLATE, 3, 10), "object_3_of_10.dat");
        assert_eq!(render("x-{}.bin", 0, 5), "x-0.bin");
        assert_eq!(render("plain", 1, 2), "plain");
        assert_eq!(
            split_template("s3://b/data-{}.bin", None).unwrap(),
            ("s3://b/".to_owned(), "data-{}.bin".to_owned())
        );
        assert_eq!(
            split_template("s3://b/p", Some("f{}")).unwrap(),
            ("s3://b/p".to_owned(), "f{}".to_owned())
        );
        assert!(split_template("s3://b/d-{}", Some("x")).is_err());
        assert!(split_template("s3://b/p", Some("../x{}")).is_err());
    }
}
