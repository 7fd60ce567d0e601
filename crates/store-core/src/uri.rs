//! Parsing of the URIs users write: `s3://bucket/key`, `az://container/key`,
//! `az://account/container/key`, `https://ACCOUNT.blob.core.windows.net/container/key`,
//! `file:///abs/path` and `direct:///abs/path`.
//!
//! Keys are taken as written (no percent-decoding), so a key holding `%` or `+` round-trips.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Operation, Result};

/// The storage protocol a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `s3://`: Amazon S3 or any S3-compatible store.
    S3,
    /// `az://`: Azure Blob Storage.
    Azure,
    /// `file://`: the local file system through the page cache.
    File,
    /// `direct://`: the local file system with O_DIRECT.
    Direct,
}

impl Scheme {
    pub const ALL: [Scheme; 4] = [Self::S3, Self::Azure, Self::File, Self::Direct];

    /// The URI prefix, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Azure => "az",
            Self::File => "file",
            Self::Direct => "direct",
        }
    }

    /// Whether objects live in a local directory tree rather than a bucket.
    pub fn is_local(self) -> bool {
        matches!(self, Self::File | Self::Direct)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed object URI.
///
/// For `file://` and `direct://` the container is empty and the key is the absolute path
/// without its leading `/` (`file:///data/x` has key `data/x`), so local stores are rooted
/// at `/` and keys compare and sort like S3 keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUri {
    pub scheme: Scheme,
    /// The Azure storage account, when the URI names it.
    pub account: Option<String>,
    /// Bucket (S3) or container (Azure); empty for local schemes.
    pub container: String,
    /// The key, or key prefix; may be empty.
    pub key: String,
}

/// What parsing needs to know beyond the string itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The Azure account from the environment (`AZURE_STORAGE_ACCOUNT` or
    /// `AZURE_STORAGE_ACCOUNT_NAME`). With one, `az://container/key` is the short form;
    /// without, `az://` URIs must name the account: `az://account/container/key`.
    pub azure_account: Option<String>,
}

impl ParseOptions {
    /// Read the defaults from the environment.
    pub fn from_env() -> Self {
        let azure_account = ["AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
        Self { azure_account }
    }
}

const AZURE_BLOB_HOST_SUFFIX: &str = ".blob.core.windows.net";

impl ObjectUri {
    /// Parse with defaults from the environment.
    pub fn parse(uri: &str) -> Result<Self> {
        Self::parse_with(uri, &ParseOptions::from_env())
    }

    /// Parse with explicit defaults.
    pub fn parse_with(uri: &str, opts: &ParseOptions) -> Result<Self> {
        Self::parse_inner(uri, opts)
            .map_err(|e| e.with_operation(Operation::Parse).with_uri(uri.to_owned()))
    }

    /// Like [`parse`](Self::parse), but a plain absolute path (`/data/x`) is taken as
    /// `file:///data/x`. Relative paths are refused: their meaning would depend on the
    /// current directory of whichever process runs them.
    pub fn parse_path_or_uri(s: &str) -> Result<Self> {
        if let Some(path) = s.strip_prefix('/') {
            return Ok(Self {
                scheme: Scheme::File,
                account: None,
                container: String::new(),
                key: path.to_owned(),
            });
        }
        Self::parse(s)
    }

    fn parse_inner(uri: &str, opts: &ParseOptions) -> Result<Self> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            if uri.starts_with('/') {
                return Err(Error::invalid_input(format!(
                    "not a URI; write file://{uri} for a local path"
                )));
            }
            return Err(Error::invalid_input(
                "not a URI: expected s3://, az://, file:// or direct://",
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "s3" => {
                let (bucket, key) = split_container(rest, "bucket")?;
                validate_bucket(bucket, "bucket")?;
                Ok(Self::remote(Scheme::S3, None, bucket, key))
            }
            "az" | "azure" => Self::parse_azure(rest, opts),
            "https" | "http" => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                let Some(account) = host.strip_suffix(AZURE_BLOB_HOST_SUFFIX) else {
                    return Err(Error::invalid_input(format!(
                        "http(s) URIs are accepted only for Azure Blob (ACCOUNT{AZURE_BLOB_HOST_SUFFIX}); \
                         for S3 use s3://bucket/key with --endpoint-url"
                    )));
                };
                validate_bucket(account, "Azure account")?;
                let (container, key) = split_container(path, "container")?;
                validate_bucket(container, "container")?;
                Ok(Self::remote(Scheme::Azure, Some(account), container, key))
            }
            "file" => Self::parse_local(Scheme::File, rest),
            "direct" => Self::parse_local(Scheme::Direct, rest),
            other => Err(Error::invalid_input(format!(
                "unknown scheme '{other}://' (supported: s3://, az://, file://, direct://)"
            ))),
        }
    }

    fn remote(scheme: Scheme, account: Option<&str>, container: &str, key: &str) -> Self {
        Self {
            scheme,
            account: account.map(str::to_owned),
            container: container.to_owned(),
            key: key.to_owned(),
        }
    }

    fn parse_azure(rest: &str, opts: &ParseOptions) -> Result<Self> {
        let (first, after) = split_container(rest, "container")?;
        let account_form = match &opts.azure_account {
            // The account is known: `az://container/key`, unless the URI spells the account
            // out in front of a container (`az://ACCOUNT/container/key`).
            Some(acct) => first == acct && !after.is_empty(),
            None => true,
        };
        if account_form {
            validate_bucket(first, "Azure account")?;
            if after.is_empty() {
                return Err(Error::invalid_input(format!(
                    "no container: write az://{first}/CONTAINER/key, or set AZURE_STORAGE_ACCOUNT \
                     and write az://CONTAINER/key"
                )));
            }
            let (container, key) = split_container(after, "container")?;
            validate_bucket(container, "container")?;
            Ok(Self::remote(Scheme::Azure, Some(first), container, key))
        } else {
            validate_bucket(first, "container")?;
            Ok(Self::remote(Scheme::Azure, None, first, after))
        }
    }

    fn parse_local(scheme: Scheme, rest: &str) -> Result<Self> {
        // RFC 8089: file:///path, or file://localhost/path.
        let path = if let Some(p) = rest.strip_prefix("localhost/") {
            p
        } else if let Some(p) = rest.strip_prefix('/') {
            p
        } else if rest.is_empty() {
            return Err(Error::invalid_input(format!(
                "no path: write {scheme}:///absolute/path"
            )));
        } else {
            return Err(Error::invalid_input(format!(
                "{scheme}:// needs an absolute path: {scheme}:///{rest} (three slashes), not a \
                 relative one"
            )));
        };
        if path.contains('\0') {
            return Err(Error::invalid_input("path contains a NUL byte"));
        }
        Ok(Self {
            scheme,
            account: None,
            container: String::new(),
            key: path.to_owned(),
        })
    }

    /// The URI of the store this object lives in: `s3://bucket/`, `file:///`, …
    pub fn store_uri(&self) -> String {
        match self.scheme {
            Scheme::File | Scheme::Direct => format!("{}:///", self.scheme),
            _ => match &self.account {
                Some(a) => format!("{}://{a}/{}/", self.scheme, self.container),
                None => format!("{}://{}/", self.scheme, self.container),
            },
        }
    }

    /// The same store with another key.
    pub fn with_key(&self, key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ..self.clone()
        }
    }

    /// For local schemes, the file-system path.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        self.scheme
            .is_local()
            .then(|| std::path::PathBuf::from(format!("/{}", self.key)))
    }
}

impl fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.store_uri(), self.key)
    }
}

impl FromStr for ObjectUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn split_container<'a>(rest: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    let (container, key) = rest.split_once('/').unwrap_or((rest, ""));
    if container.is_empty() {
        return Err(Error::invalid_input(format!("missing {what} name")));
    }
    Ok((container, key))
}

/// Bucket, container and account names: letters, digits, `.`, `-`, `_` (the union of what
/// S3-compatible stores accept), 1 to 255 characters. Anything else (`:` in `s3://s3://x`,
/// spaces, `@`) is a mistake worth naming.
fn validate_bucket(name: &str, what: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '$');
    if name.is_empty() || name.len() > 255 || !name.chars().all(ok_char) {
        return Err(Error::invalid_input(format!(
            "{what} name '{name}' is invalid (letters, digits, '.', '-', '_' only)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn p(s: &str) -> ObjectUri {
        ObjectUri::parse_with(s, &ParseOptions::default()).unwrap()
    }

    fn bad(s: &str) -> String {
        let e = ObjectUri::parse_with(s, &ParseOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{s}: {e}");
        e.to_string()
    }

    #[test]
    fn s3_forms() {
        let u = p("s3://bucket/a/b c+%.bin");
        assert_eq!(
            (u.scheme, u.container.as_str(), u.key.as_str()),
            (Scheme::S3, "bucket", "a/b c+%.bin")
        );
        assert_eq!(u.to_string(), "s3://bucket/a/b c+%.bin");
        assert_eq!(p("s3://bucket").key, "");
        assert_eq!(p("s3://bucket/").key, "");
        assert_eq!(p("S3://bucket/k").scheme, Scheme::S3);
    }

    #[test]
    fn malformed_uris_name_the_problem() {
        assert!(bad("s3://").contains("missing bucket"));
        assert!(bad("s3:///key").contains("missing bucket"));
        assert!(bad("s3://s3://x").contains("bucket name 's3:' is invalid"));
        assert!(bad("gs://b/k").contains("unknown scheme 'gs://'"));
        assert!(bad("file://relative/path").contains("absolute path"));
        assert!(bad("file://").contains("no path"));
        assert!(bad("data/x").contains("not a URI"));
        assert!(bad("/data/x").contains("file:///data/x"));
        assert!(bad("https://example.com/x").contains("Azure"));
        assert!(bad("s3://bu cket/k").contains("invalid"));
    }

    #[test]
    fn local_forms() {
        let u = p("file:///data/train/x.bin");
        assert_eq!(
            (u.scheme, u.key.as_str()),
            (Scheme::File, "data/train/x.bin")
        );
        assert_eq!(u.to_string(), "file:///data/train/x.bin");
        assert_eq!(
            u.local_path().unwrap(),
            std::path::PathBuf::from("/data/train/x.bin")
        );
        assert_eq!(p("file://localhost/tmp/x").key, "tmp/x");
        assert_eq!(p("direct:///nvme/x").scheme, Scheme::Direct);
        assert_eq!(p("file:///").key, "");
        assert_eq!(
            ObjectUri::parse_path_or_uri("/a/b").unwrap().to_string(),
            "file:///a/b"
        );
    }

    #[test]
    fn azure_forms() {
        let none = ParseOptions::default();
        let env = ParseOptions {
            azure_account: Some("acct".into()),
        };
        let u = ObjectUri::parse_with("az://acct/cont/k/x", &none).unwrap();
        assert_eq!(
            (u.account.as_deref(), u.container.as_str(), u.key.as_str()),
            (Some("acct"), "cont", "k/x")
        );
        assert_eq!(u.to_string(), "az://acct/cont/k/x");
        let u = ObjectUri::parse_with("az://cont/k/x", &env).unwrap();
        assert_eq!(
            (u.account.as_deref(), u.container.as_str(), u.key.as_str()),
            (None, "cont", "k/x")
        );
        let u = ObjectUri::parse_with("az://acct/cont/k", &env).unwrap();
        assert_eq!(
            (u.account.as_deref(), u.container.as_str()),
            (Some("acct"), "cont")
        );
        let u = ObjectUri::parse_with("https://acct.blob.core.windows.net/cont/k", &none).unwrap();
        assert_eq!(
            (
                u.scheme,
                u.account.as_deref(),
                u.container.as_str(),
                u.key.as_str()
            ),
            (Scheme::Azure, Some("acct"), "cont", "k")
        );
        let e = ObjectUri::parse_with("az://cont", &none).unwrap_err();
        assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT"), "{e}");
    }
}
