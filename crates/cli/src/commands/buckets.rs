//! `list-buckets`, `create-bucket`, `delete-bucket`: buckets are an S3 notion; on file://
//! a "bucket" is a directory.

use s3dlio_store_core::{ErrorKind, ObjectUri, Scheme};
use s3dlio_store_s3::S3Store;

use super::{out, s3_options, CliError, CliResult, Ctx};
use crate::args::{BucketArgs, ListBucketsArgs};
use crate::progress::note;
use crate::units::json_str;

/// `s3://NAME`, `NAME` (S3) or a local path / `file://` URI.
fn bucket_uri(ctx: &Ctx, arg: &str) -> CliResult<ObjectUri> {
    let uri = if arg.contains("://") || arg.starts_with('/') || arg.starts_with('.') {
        ctx.location(arg)?
    } else {
        ctx.registry.parse(&format!("s3://{arg}"))?
    };
    if uri.scheme == Scheme::S3 && !uri.key.trim_end_matches('/').is_empty() {
        return Err(format!(
            "{arg}: a bucket URI has no key (write s3://{})",
            uri.container
        )
        .into());
    }
    Ok(uri)
}

async fn s3_store(ctx: &Ctx, bucket: &str) -> CliResult<S3Store> {
    Ok(S3Store::new(bucket, s3_options(&ctx.s3)?).await?)
}

pub async fn list_buckets(ctx: &Ctx, a: ListBucketsArgs) -> CliResult {
    if let Some(s) = a.scheme.as_deref() {
        let scheme = s.split("://").next().unwrap_or(s).to_ascii_lowercase();
        if scheme != "s3" {
            return Err(format!(
                "list-buckets: buckets are an S3 concept; {scheme}:// has directories (use ls)"
            )
            .into());
        }
    }
    for name in bucket_names(ctx).await? {
        print_bucket(ctx, &name)?;
    }
    Ok(())
}

/// The S3 buckets the credentials can see.
pub async fn bucket_names(ctx: &Ctx) -> CliResult<Vec<String>> {
    // Any bucket name serves: listing buckets is a call on the client.
    let store = s3_store(ctx, "list-buckets").await?;
    Ok(S3Store::list_buckets(store.client()).await?)
}

/// One line of `list-buckets` (and of `ls s3://`).
pub fn print_bucket(ctx: &Ctx, name: &str) -> CliResult {
    if ctx.json {
        out(&format!("{{\"bucket\":{}}}", json_str(name)))
    } else {
        out(name)
    }
}

/// Create the bucket (or directory) `uri` lives in if it is missing (`put -c`, `upload -c`).
pub async fn ensure_bucket(ctx: &Ctx, uri: &ObjectUri) -> CliResult {
    match uri.scheme {
        Scheme::S3 => match s3_store(ctx, &uri.container).await?.create_bucket().await {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e.into()),
            _ => Ok(()),
        },
        s if s.is_local() => {
            // The directory part of the key; the writers create deeper ones themselves.
            let dir = uri.key.rfind('/').map_or("", |i| &uri.key[..i]);
            let path = format!("/{dir}");
            std::fs::create_dir_all(&path)
                .map_err(|e| CliError(format!("creating directory {path}: {e}")))
        }
        s => Err(format!("creating buckets on {s}:// is not supported by this build").into()),
    }
}

pub async fn create_bucket(ctx: &Ctx, a: BucketArgs) -> CliResult {
    let uri = bucket_uri(ctx, &a.bucket)?;
    match uri.scheme {
        Scheme::S3 => {
            s3_store(ctx, &uri.container).await?.create_bucket().await?;
            note(&format!("created bucket s3://{}", uri.container));
            Ok(())
        }
        Scheme::File => {
            let path = uri.local_path().unwrap_or_default();
            std::fs::create_dir_all(&path)
                .map_err(|e| CliError(format!("creating directory {}: {e}", path.display())))?;
            note(&format!("created directory {}", path.display()));
            Ok(())
        }
        _ => Err(ctx.store(&uri).await.err().unwrap_or_else(|| {
            CliError(format!(
                "creating buckets on {}:// is not supported",
                uri.scheme
            ))
        })),
    }
}

pub async fn delete_bucket(ctx: &Ctx, a: BucketArgs) -> CliResult {
    let uri = bucket_uri(ctx, &a.bucket)?;
    match uri.scheme {
        Scheme::S3 => {
            s3_store(ctx, &uri.container).await?.delete_bucket().await?;
            note(&format!("deleted bucket s3://{}", uri.container));
            Ok(())
        }
        Scheme::File => {
            let path = uri.local_path().unwrap_or_default();
            std::fs::remove_dir(&path).map_err(|e| {
                CliError(format!(
                    "deleting directory {}: {e} (only an empty directory is deleted)",
                    path.display()
                ))
            })?;
            note(&format!("deleted directory {}", path.display()));
            Ok(())
        }
        _ => Err(ctx.store(&uri).await.err().unwrap_or_else(|| {
            CliError(format!(
                "deleting buckets on {}:// is not supported",
                uri.scheme
            ))
        })),
    }
}
