//! [`S3Options`] into an `AmazonS3Builder`: the `AWS_*` environment first (as
//! `AmazonS3Builder::from_env` reads it), then every option `object_store` can express.

use std::sync::Arc;

use object_store::aws::{
    AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsCredential, Checksum, S3ConditionalPut,
    S3CopyIfNotExists,
};
use object_store::{Certificate, ClientOptions, RetryConfig, StaticCredentialProvider};
use s3dlio_store_core::{Error, ErrorKind, Result};

use crate::config::{S3Options, ServerSideEncryption, UploadIntegrity};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Path-style addressing: the option, else `S3DLIO_FORCE_PATH_STYLE`, else on for a custom
/// endpoint (what S3-compatible stores expect) and off for AWS, as in the native backend.
pub(crate) fn path_style(opts: &S3Options, custom_endpoint: bool) -> Result<bool> {
    if let Some(v) = opts.force_path_style {
        return Ok(v);
    }
    match env("S3DLIO_FORCE_PATH_STYLE").map(|v| v.to_ascii_lowercase()) {
        None => Ok(custom_endpoint),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            other => Err(Error::invalid_input(format!(
                "S3DLIO_FORCE_PATH_STYLE='{other}' is not a boolean"
            ))),
        },
    }
}

/// `http://host:port/...` as `http://bucket.host:port/...`: object_store expects a
/// virtual-hosted endpoint to name the bucket already.
pub(crate) fn virtual_hosted(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("{bucket}.{endpoint}"),
    }
}

/// The CA bundle from the option, else `AWS_CA_BUNDLE` (or the original s3dlio's
/// `AWS_CA_BUNDLE_PATH`), as in the native backend.
fn ca_bundle(opts: &S3Options) -> Option<std::path::PathBuf> {
    opts.ca_bundle
        .clone()
        .or_else(|| env("AWS_CA_BUNDLE").map(Into::into))
        .or_else(|| env("AWS_CA_BUNDLE_PATH").map(Into::into))
}

/// HTTP client options: the `AWS_*` client settings of the environment (proxy, HTTP/2,
/// timeouts...), which `AmazonS3Builder::from_env` would read too, so that replacing the
/// builder's client options keeps them.
fn client_options_from_env() -> ClientOptions {
    let mut client = ClientOptions::new();
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if !name.starts_with("AWS_") {
            continue;
        }
        if let Ok(AmazonS3ConfigKey::Client(key)) = name.to_ascii_lowercase().parse() {
            client = client.with_config(key, value);
        }
    }
    client
}

fn config_error(e: object_store::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "object_store rejected the S3 configuration",
    )
    .with_source(super::error::ObjectStoreError::from(e))
}

/// Build the `object_store` client of one bucket.
pub(crate) fn build(bucket: &str, opts: &S3Options) -> Result<AmazonS3> {
    opts.validate()?;
    if let Some(p) = &opts.profile {
        return Err(Error::not_supported(format!(
            "the object_store backend cannot read AWS profiles (profile '{p}'): object_store \
             reads no shared config or credentials files; give credentials explicitly or in \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )));
    }
    if opts.endpoints.len() > 1 {
        return Err(Error::not_supported(format!(
            "the object_store backend uses one endpoint ({} given): several endpoints are \
             balanced by the native backend only",
            opts.endpoints.len()
        )));
    }
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);

    let endpoint = opts.effective_endpoint();
    let path_style = path_style(opts, endpoint.is_some())?;
    if let Some(ep) = &endpoint {
        let ep = ep.trim_end_matches('/');
        let url = if path_style {
            ep.to_owned()
        } else {
            virtual_hosted(ep, bucket)
        };
        // The S3-specific key wins over AWS_ENDPOINT_URL inside object_store, so the
        // endpoint chosen here (the option's, else the environment's) is the one used.
        b = b.with_config(AmazonS3ConfigKey::S3Endpoint, url);
    }
    b = b.with_virtual_hosted_style_request(!path_style);
    if let Some(r) = &opts.region {
        b = b.with_region(r);
    }
    if opts.no_sign_request {
        b = b.with_skip_signature(true);
    }
    if opts.requester_pays {
        b = b.with_request_payer(true);
    }
    if let Some(c) = &opts.credentials {
        // A provider, not the key fields: an AWS_SESSION_TOKEN of the environment must not
        // be paired with explicit keys.
        b = b.with_credentials(Arc::new(StaticCredentialProvider::new(AwsCredential {
            key_id: c.access_key_id.clone(),
            secret_key: c.secret_access_key.clone(),
            token: c.session_token.clone(),
        })));
    }

    if let Some(sse) = &opts.server_side_encryption {
        // object_store names its encryption keys only as strings.
        let kind: AmazonS3ConfigKey = "aws_server_side_encryption".parse().map_err(config_error)?;
        b = b.with_config(kind, sse.as_str());
        if let ServerSideEncryption::Kms { key_id, bucket_key } = sse {
            if let Some(k) = key_id {
                b = b.with_sse_kms_encryption(k);
            }
            if let Some(on) = bucket_key {
                b = b.with_bucket_key(*on);
            }
        }
    }

    // Conditional writes and create-only copies are part of the trait's contract: never
    // let the environment turn them off.
    b = b
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);

    // object_store has no CRC32C; CRC64NVME is its cheap checksum for the server to verify,
    // and with it the payload need not be hashed into the signature (the costly SHA-256).
    // With `UploadIntegrity::None` the payload goes unverified, unless AWS_CHECKSUM_ALGORITHM
    // asks object_store for a checksum.
    match opts.upload_integrity {
        UploadIntegrity::Crc32c => {
            b = b
                .with_unsigned_payload(true)
                .with_checksum_algorithm(Checksum::CRC64NVME)
        }
        UploadIntegrity::SignedPayload => b = b.with_unsigned_payload(false),
        UploadIntegrity::None => b = b.with_unsigned_payload(true),
    }

    b = b.with_retry(RetryConfig {
        max_retries: opts.max_attempts.saturating_sub(1) as usize,
        ..RetryConfig::default()
    });

    let mut client = client_options_from_env()
        .with_connect_timeout(opts.connect_timeout)
        .with_read_timeout(opts.read_timeout);
    client = match opts.attempt_timeout {
        Some(t) => client.with_timeout(t),
        // object_store's default is 30 s per request, which would cut off large parts on slow
        // links; an AWS_TIMEOUT of the environment still applies.
        None if client
            .get_config_value(&object_store::ClientConfigKey::Timeout)
            .is_none() =>
        {
            client.with_timeout_disabled()
        }
        None => client,
    };
    if endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
    {
        client = client.with_allow_http(true);
    }
    if let Some(path) = ca_bundle(opts) {
        let pem = std::fs::read(&path)
            .map_err(|e| Error::from_io(e, format!("reading CA bundle {}", path.display())))?;
        let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::invalid_input(format!("CA bundle {}", path.display()))
                .with_source(super::error::ObjectStoreError::from(e))
        })?;
        if certs.is_empty() {
            return Err(Error::invalid_input(format!(
                "CA bundle {} holds no PEM certificate",
                path.display()
            )));
        }
        for cert in certs {
            client = client.with_root_certificate(cert);
        }
    }
    b.with_client_options(client).build().map_err(config_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_name_the_bucket() {
        assert_eq!(
            virtual_hosted("http://127.0.0.1:9000", "b"),
            "http://b.127.0.0.1:9000"
        );
        assert_eq!(
            virtual_hosted("https://s3.example.com/base", "bk"),
            "https://bk.s3.example.com/base"
        );
    }

    #[test]
    fn explicit_path_style_wins() {
        let o = S3Options {
            force_path_style: Some(false),
            ..S3Options::default()
        };
        assert!(!path_style(&o, true).unwrap());
    }

    #[test]
    fn profiles_are_refused_not_ignored() {
        let o = S3Options {
            profile: Some("dev".into()),
            ..S3Options::default()
        };
        let e = build("b", &o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert!(e.to_string().contains("profile 'dev'"), "{e}");
    }

    #[test]
    fn several_endpoints_are_refused_not_ignored() {
        let o = S3Options {
            endpoints: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            ..S3Options::default()
        };
        let e = build("b", &o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert!(e.to_string().contains("one endpoint (2 given)"), "{e}");
    }

    #[test]
    fn a_bad_ca_bundle_is_a_clear_error() {
        let path = std::env::temp_dir().join(format!("s3dlio-objs-ca-{}", std::process::id()));
        std::fs::write(&path, b"not a certificate").unwrap();
        let o = S3Options {
            endpoint_url: Some("https://127.0.0.1:1".into()),
            ca_bundle: Some(path.clone()),
            ..S3Options::default()
        };
        let e = build("b", &o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let _ = std::fs::remove_file(&path);
    }
}
