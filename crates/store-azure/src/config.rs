//! How an Azure Blob store is configured: explicit [`AzureOptions`] first, then the
//! standard Azure environment variables, then defaults.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use s3dlio_store_core::{Error, Result};

const MIB: usize = 1024 * 1024;

/// The well-known account of the Azure Storage emulator (Azurite).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// The well-known key of the emulator's account (published by Microsoft; not a secret).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests are authorized.
#[derive(Clone)]
pub enum AzureCredential {
    /// Shared Key: every request signed with HMAC-SHA256 of the account key (base64).
    AccountKey(String),
    /// A shared access signature (the query string, with or without a leading `?`).
    Sas(String),
    /// An Entra ID token credential (service principal, workload identity, managed
    /// identity, Azure CLI, ...), sent as a bearer token (HTTPS endpoints only).
    Token(Arc<dyn TokenCredential>),
    /// No authorization (public containers).
    Anonymous,
}

impl fmt::Debug for AzureCredential {
    // Keys and signatures never reach logs or error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AccountKey(_) => "AccountKey(<redacted>)",
            Self::Sas(_) => "Sas(<redacted>)",
            Self::Token(_) => "Token(Entra ID)",
            Self::Anonymous => "Anonymous",
        })
    }
}

impl PartialEq for AzureCredential {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::AccountKey(a), Self::AccountKey(b)) | (Self::Sas(a), Self::Sas(b)) => a == b,
            (Self::Token(a), Self::Token(b)) => Arc::ptr_eq(a, b),
            (Self::Anonymous, Self::Anonymous) => true,
            _ => false,
        }
    }
}

/// Blob access tiers, settable on upload and reported by `head` and listings in
/// `ObjectMeta::storage_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTier {
    Hot,
    Cool,
    Cold,
    Archive,
}

impl AccessTier {
    /// The name the service uses (`x-ms-access-tier`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "Hot",
            Self::Cool => "Cool",
            Self::Cold => "Cold",
            Self::Archive => "Archive",
        }
    }

    /// Parse a tier name, case-insensitively.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hot" => Ok(Self::Hot),
            "cool" => Ok(Self::Cool),
            "cold" => Ok(Self::Cold),
            "archive" => Ok(Self::Archive),
            other => Err(Error::invalid_input(format!(
                "unknown access tier '{other}' (hot, cool, cold, archive)"
            ))),
        }
    }
}

/// Options of the `az://` backend. `None` means "from the environment, else the default".
#[derive(Debug, Clone, PartialEq)]
pub struct AzureOptions {
    /// Storage account. Else the URI's, `AZURE_STORAGE_ACCOUNT`,
    /// `AZURE_STORAGE_ACCOUNT_NAME`, or the connection string's `AccountName`.
    pub account: Option<String>,
    /// Blob service endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1` (emulator,
    /// path-style) or a sovereign cloud's `https://ACCOUNT.blob.core.chinacloudapi.cn`. Else
    /// `AZURE_STORAGE_ENDPOINT`, the connection string's `BlobEndpoint`, or
    /// `https://ACCOUNT.blob.core.windows.net`. A trailing `/` is removed.
    pub endpoint: Option<String>,
    /// How to authorize. Else, in order: `AZURE_STORAGE_CONNECTION_STRING` (its
    /// `AccountKey` or `SharedAccessSignature`), `AZURE_STORAGE_KEY` /
    /// `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`, then Entra ID (see
    /// [`entra_id_from_env`]).
    pub credential: Option<AzureCredential>,
    /// Tier given to every blob this store uploads. Else `S3DLIO_AZURE_ACCESS_TIER`
    /// (when registered from the environment); default: the account's default tier.
    pub access_tier: Option<AccessTier>,
    /// Reads are split into ranged GETs of this size (default 8 MiB).
    pub get_part_size: usize,
    /// Ranged GETs in flight for one blob (default 8).
    pub get_concurrency: usize,
    /// Idle memory kept for reuse by reads of 512 KiB and more (see
    /// `s3dlio_store_core::pool`): the next large read lands in memory already faulted in.
    /// Default 256 MiB; 0 turns pooling off.
    pub buffer_pool_bytes: usize,
    /// Writes up to this size go in one Put Blob; larger ones as staged blocks committed
    /// once (default 16 MiB).
    pub put_threshold: usize,
    /// Size of staged blocks (default 8 MiB; at most 4,000 MiB).
    pub block_size: usize,
    /// Blocks uploaded concurrently by one writer (default 8).
    pub upload_concurrency: usize,
    /// Retries of transient failures (503 ServerBusy, 500, timeouts, resets) per request,
    /// with exponential backoff (default 3).
    pub max_retries: u32,
    /// Whether a retry layer above this store (`s3dlio_store_core::RetryStore`, which the
    /// CLI and the Python module put over every store) retries whole operations. Then each
    /// operation's request is sent once, only the sub-requests the layer cannot see (the
    /// staged blocks and block list of a streamed write) are retried here, `max_retries`
    /// times, and their last error comes back final, so attempts never multiply.
    /// Default false: every request is retried here.
    pub outer_retries: bool,
}

impl Default for AzureOptions {
    fn default() -> Self {
        Self {
            account: None,
            endpoint: None,
            credential: None,
            access_tier: None,
            get_part_size: 8 * MIB,
            get_concurrency: 8,
            buffer_pool_bytes: 256 * MIB,
            put_threshold: 16 * MIB,
            block_size: 8 * MIB,
            upload_concurrency: 8,
            max_retries: 3,
            outer_retries: false,
        }
    }
}

/// The largest staged block the service accepts.
pub const MAX_BLOCK_SIZE: usize = 4000 * MIB;
/// The most blocks one blob may have.
pub const MAX_BLOCKS: u32 = 50_000;

/// Where the environment comes from: the process, or a map in tests.
pub(crate) trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .filter(|v| !v.trim().is_empty())
    }
}

/// The fields of a connection string (`Key=Value;...`), names compared case-insensitively.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionString {
    pub account_name: Option<String>,
    pub account_key: Option<String>,
    pub sas: Option<String>,
    pub blob_endpoint: Option<String>,
    pub protocol: Option<String>,
    pub endpoint_suffix: Option<String>,
}

impl ConnectionString {
    pub fn parse(s: &str) -> Result<Self> {
        let mut out = Self::default();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Values (keys, signatures) may hold '=': split at the first one only.
            let Some((k, v)) = part.split_once('=') else {
                return Err(Error::invalid_input(
                    "AZURE_STORAGE_CONNECTION_STRING: a part has no '=' (expected \
                     Key=Value;Key=Value)",
                ));
            };
            let v = Some(v.trim().to_owned());
            match k.trim().to_ascii_lowercase().as_str() {
                "accountname" => out.account_name = v,
                "accountkey" => out.account_key = v,
                "sharedaccesssignature" => out.sas = v,
                "blobendpoint" => out.blob_endpoint = v,
                "defaultendpointsprotocol" => out.protocol = v,
                "endpointsuffix" => out.endpoint_suffix = v,
                "usedevelopmentstorage" if v.as_deref() == Some("true") => {
                    out.account_name = Some(DEV_ACCOUNT.into());
                    out.account_key = Some(DEV_ACCOUNT_KEY.into());
                    out.blob_endpoint = Some(format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
                }
                // Queue, table and file endpoints are not ours.
                _ => {}
            }
        }
        Ok(out)
    }
}

/// What a store needs, decided: account, endpoint (no trailing `/`) and credential.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub account: String,
    pub endpoint: String,
    pub credential: AzureCredential,
}

impl AzureOptions {
    /// Reject values the service cannot work with, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_input(m));
        if self.block_size == 0 || self.block_size > MAX_BLOCK_SIZE {
            return bad(format!(
                "block_size {} is outside 1..={MAX_BLOCK_SIZE}",
                self.block_size
            ));
        }
        if self.put_threshold == 0 || self.get_part_size == 0 {
            return bad("put_threshold and get_part_size must be positive".into());
        }
        if self.get_concurrency == 0 || self.upload_concurrency == 0 {
            return bad("get_concurrency and upload_concurrency must be at least 1".into());
        }
        if let Some(ep) = &self.endpoint {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return bad(format!(
                    "endpoint '{ep}' must start with http:// or https://"
                ));
            }
        }
        Ok(())
    }

    /// These options with `S3DLIO_AZURE_*` tuning from the environment:
    /// `S3DLIO_AZURE_ACCESS_TIER`, `S3DLIO_GET_PART_SIZE`, `S3DLIO_RANGE_CONCURRENCY`,
    /// `S3DLIO_AZURE_BLOCK_SIZE`, `S3DLIO_UPLOAD_CONCURRENCY` (sizes take units).
    pub fn with_env_overrides(self) -> Result<Self> {
        self.env_overrides(&ProcessEnv)
    }

    pub(crate) fn env_overrides(mut self, env: &dyn Env) -> Result<Self> {
        let size = |name: &str| -> Result<Option<usize>> {
            env.var(name)
                .map(|v| {
                    s3dlio_store_core::parse_size(&v)
                        .and_then(|n| {
                            usize::try_from(n)
                                .map_err(|_| Error::invalid_input(format!("'{v}' is too large")))
                        })
                        .map_err(|e| Error::invalid_input(format!("{name}: {}", e.message())))
                })
                .transpose()
        };
        let count = |name: &str| -> Result<Option<usize>> {
            env.var(name)
                .map(|v| {
                    s3dlio_store_core::parse_count(&v)
                        .map(|n| n as usize)
                        .map_err(|e| Error::invalid_input(format!("{name}: {}", e.message())))
                })
                .transpose()
        };
        if self.access_tier.is_none() {
            if let Some(t) = env.var("S3DLIO_AZURE_ACCESS_TIER") {
                self.access_tier = Some(AccessTier::parse(&t).map_err(|e| {
                    Error::invalid_input(format!("S3DLIO_AZURE_ACCESS_TIER: {}", e.message()))
                })?);
            }
        }
        if let Some(v) = size("S3DLIO_GET_PART_SIZE")? {
            self.get_part_size = v;
        }
        if let Some(v) = count("S3DLIO_RANGE_CONCURRENCY")? {
            self.get_concurrency = v;
        }
        if let Some(v) = size("S3DLIO_AZURE_BLOCK_SIZE")? {
            self.block_size = v;
        }
        if let Some(v) = count("S3DLIO_UPLOAD_CONCURRENCY")? {
            self.upload_concurrency = v;
        }
        self.validate()?;
        Ok(self)
    }

    /// Decide account, endpoint and credential for a store whose URI named `uri_account`
    /// (if any), from these options and the process environment. Builds no network
    /// connection (an Entra ID credential asks for its first token on the first request).
    pub fn resolve(&self, uri_account: Option<&str>) -> Result<Resolved> {
        self.resolve_with(uri_account, &ProcessEnv)
    }

    pub(crate) fn resolve_with(
        &self,
        uri_account: Option<&str>,
        env: &dyn Env,
    ) -> Result<Resolved> {
        self.validate()?;
        let conn = env
            .var("AZURE_STORAGE_CONNECTION_STRING")
            .map(|s| ConnectionString::parse(&s))
            .transpose()?
            .unwrap_or_default();
        let account = uri_account
            .map(str::to_owned)
            .or_else(|| self.account.clone())
            .or_else(|| env.var("AZURE_STORAGE_ACCOUNT"))
            .or_else(|| env.var("AZURE_STORAGE_ACCOUNT_NAME"))
            .or_else(|| conn.account_name.clone())
            .ok_or_else(|| {
                Error::invalid_input(
                    "no Azure storage account: write az://ACCOUNT/container/key, or set \
                     AZURE_STORAGE_ACCOUNT",
                )
            })?;
        // The connection string speaks for its own account only.
        let conn_applies = conn.account_name.as_deref().is_none_or(|a| a == account);
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| env.var("AZURE_STORAGE_ENDPOINT"))
            .or_else(|| {
                conn_applies
                    .then(|| conn.blob_endpoint.clone())
                    .flatten()
                    .or_else(|| {
                        let suffix = conn.endpoint_suffix.as_deref()?;
                        let proto = conn.protocol.as_deref().unwrap_or("https");
                        Some(format!("{proto}://{account}.blob.{suffix}"))
                    })
            })
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::invalid_input(format!(
                "Azure endpoint '{endpoint}' must start with http:// or https://"
            )));
        }
        let credential = match &self.credential {
            Some(c) => c.clone(),
            None => {
                let conn_key = conn_applies.then(|| conn.account_key.clone()).flatten();
                let conn_sas = conn_applies.then(|| conn.sas.clone()).flatten();
                if let Some(k) = conn_key {
                    AzureCredential::AccountKey(k)
                } else if let Some(s) = conn_sas {
                    AzureCredential::Sas(s)
                } else if let Some(k) = env
                    .var("AZURE_STORAGE_KEY")
                    .or_else(|| env.var("AZURE_STORAGE_ACCOUNT_KEY"))
                {
                    AzureCredential::AccountKey(k)
                } else if let Some(s) = env.var("AZURE_STORAGE_SAS_TOKEN") {
                    AzureCredential::Sas(s)
                } else {
                    AzureCredential::Token(entra_id_from(env)?)
                }
            }
        };
        if let AzureCredential::Token(_) = credential {
            if !endpoint.starts_with("https://") {
                return Err(Error::invalid_input(format!(
                    "Entra ID tokens are only sent over HTTPS, and the endpoint is {endpoint}; \
                     give an account key (AZURE_STORAGE_KEY), a SAS (AZURE_STORAGE_SAS_TOKEN) \
                     or a connection string for an http:// endpoint such as the emulator"
                )));
            }
        }
        if let AzureCredential::AccountKey(k) = &credential {
            azure_core::base64::decode(k)
                .map_err(|_| Error::invalid_input("the Azure account key is not valid base64"))?;
        }
        Ok(Resolved {
            account,
            endpoint,
            credential,
        })
    }
}

/// Which Entra ID credential the environment asks for, without contacting anyone:
/// a service principal with a secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
/// `AZURE_CLIENT_SECRET`), workload identity (`AZURE_FEDERATED_TOKEN_FILE` with tenant and
/// client ids), managed identity (`IDENTITY_ENDPOINT` or `MSI_ENDPOINT`, or
/// `AZURE_CLIENT_ID` alone for a user-assigned identity), else the developer tools (Azure
/// CLI, Azure Developer CLI).
pub fn entra_id_from_env() -> Result<Arc<dyn TokenCredential>> {
    entra_id_from(&ProcessEnv)
}

/// The kind [`entra_id_from_env`] picks, for messages and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntraKind {
    ServicePrincipal,
    WorkloadIdentity,
    ManagedIdentity,
    DeveloperTools,
}

pub(crate) fn entra_kind(env: &dyn Env) -> EntraKind {
    let has = |v: &str| env.var(v).is_some();
    if has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID") && has("AZURE_CLIENT_SECRET") {
        EntraKind::ServicePrincipal
    } else if has("AZURE_FEDERATED_TOKEN_FILE") {
        EntraKind::WorkloadIdentity
    } else if has("IDENTITY_ENDPOINT") || has("MSI_ENDPOINT") || has("AZURE_CLIENT_ID") {
        EntraKind::ManagedIdentity
    } else {
        EntraKind::DeveloperTools
    }
}

fn entra_id_from(env: &dyn Env) -> Result<Arc<dyn TokenCredential>> {
    let ctx = |what: &str| {
        let what = what.to_owned();
        move |e: azure_core::Error| {
            Error::new(
                s3dlio_store_core::ErrorKind::Unauthenticated,
                format!("Entra ID ({what}): {e}"),
            )
        }
    };
    let get = |v: &str| env.var(v).unwrap_or_default();
    Ok(match entra_kind(env) {
        EntraKind::ServicePrincipal => azure_identity::ClientSecretCredential::new(
            &get("AZURE_TENANT_ID"),
            get("AZURE_CLIENT_ID"),
            get("AZURE_CLIENT_SECRET").into(),
            None,
        )
        .map_err(ctx("service principal from AZURE_CLIENT_SECRET"))?,
        EntraKind::WorkloadIdentity => azure_identity::WorkloadIdentityCredential::new(None)
            .map_err(ctx("workload identity from AZURE_FEDERATED_TOKEN_FILE"))?,
        EntraKind::ManagedIdentity => {
            let options = env.var("AZURE_CLIENT_ID").map(|id| {
                azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: Some(azure_identity::UserAssignedId::ClientId(id)),
                    ..Default::default()
                }
            });
            azure_identity::ManagedIdentityCredential::new(options)
                .map_err(ctx("managed identity"))?
        }
        EntraKind::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)
            .map_err(ctx("Azure CLI / Azure Developer CLI"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(env: &dyn Env, opts: &AzureOptions, acct: Option<&str>) -> Result<Resolved> {
        opts.resolve_with(acct, env)
    }

    #[test]
    fn connection_strings_parse_with_equals_in_values() {
        let c = ConnectionString::parse(
            "DefaultEndpointsProtocol=http;AccountName=a1;AccountKey=YWJj==;\
             BlobEndpoint=http://127.0.0.1:9/a1/;QueueEndpoint=http://x",
        )
        .unwrap();
        assert_eq!(c.account_name.as_deref(), Some("a1"));
        assert_eq!(c.account_key.as_deref(), Some("YWJj=="));
        assert_eq!(c.blob_endpoint.as_deref(), Some("http://127.0.0.1:9/a1/"));
        let d = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(d.account_name.as_deref(), Some(DEV_ACCOUNT));
        assert!(ConnectionString::parse("garbage").is_err());
    }

    #[test]
    fn connection_string_gives_account_endpoint_and_key() {
        let env = [(
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=a1;AccountKey=YWJj;BlobEndpoint=http://127.0.0.1:9/a1/",
        )];
        let r = resolve(&env, &AzureOptions::default(), None).unwrap();
        assert_eq!(r.account, "a1");
        assert_eq!(r.endpoint, "http://127.0.0.1:9/a1", "trailing / removed");
        assert_eq!(r.credential, AzureCredential::AccountKey("YWJj".into()));
        // With a suffix instead of an endpoint.
        let env = [(
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=a2;SharedAccessSignature=sv=1&sig=x;\
             EndpointSuffix=core.chinacloudapi.cn",
        )];
        let r = resolve(&env, &AzureOptions::default(), None).unwrap();
        assert_eq!(r.endpoint, "https://a2.blob.core.chinacloudapi.cn");
        assert_eq!(r.credential, AzureCredential::Sas("sv=1&sig=x".into()));
    }

    #[test]
    fn key_sas_and_endpoint_variables() {
        let env = [
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_KEY", "a2V5"),
            ("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=y"),
        ];
        let r = resolve(&env, &AzureOptions::default(), None).unwrap();
        assert_eq!(r.account, "acct");
        assert_eq!(r.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(
            r.credential,
            AzureCredential::AccountKey("a2V5".into()),
            "a key wins over a SAS"
        );
        let env = [
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
            ("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:7/acct/"),
        ];
        let r = resolve(&env, &AzureOptions::default(), None).unwrap();
        assert_eq!(r.endpoint, "http://127.0.0.1:7/acct");
        assert_eq!(r.credential, AzureCredential::AccountKey("a2V5".into()));
        let env = [
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=y"),
        ];
        let r = resolve(&env, &AzureOptions::default(), None).unwrap();
        assert_eq!(r.credential, AzureCredential::Sas("?sv=1&sig=y".into()));
    }

    #[test]
    fn explicit_options_and_uri_account_win() {
        let env = [
            ("AZURE_STORAGE_ACCOUNT", "envacct"),
            ("AZURE_STORAGE_KEY", "a2V5"),
            ("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:7/envacct"),
        ];
        let opts = AzureOptions {
            account: Some("optacct".into()),
            endpoint: Some("http://127.0.0.1:8/optacct/".into()),
            credential: Some(AzureCredential::Sas("sig=z".into())),
            ..AzureOptions::default()
        };
        let r = resolve(&env, &opts, None).unwrap();
        assert_eq!(r.account, "optacct");
        assert_eq!(r.endpoint, "http://127.0.0.1:8/optacct");
        assert_eq!(r.credential, AzureCredential::Sas("sig=z".into()));
        let r = resolve(&env, &opts, Some("uriacct")).unwrap();
        assert_eq!(r.account, "uriacct", "the URI names the account");
        // A connection string for another account does not lend its key.
        let env = [
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "AccountName=other;AccountKey=a2V5",
            ),
            ("AZURE_STORAGE_SAS_TOKEN", "sig=mine"),
        ];
        let r = resolve(&env, &AzureOptions::default(), Some("mine")).unwrap();
        assert_eq!(r.credential, AzureCredential::Sas("sig=mine".into()));
    }

    #[test]
    fn missing_account_and_bad_values_are_named() {
        let env: [(&str, &str); 0] = [];
        let e = resolve(&env, &AzureOptions::default(), None).unwrap_err();
        assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT"), "{e}");
        let env = [
            ("AZURE_STORAGE_ACCOUNT", "a"),
            ("AZURE_STORAGE_KEY", "not base64!"),
        ];
        let e = resolve(&env, &AzureOptions::default(), None).unwrap_err();
        assert!(e.to_string().contains("base64"), "{e}");
        assert!(
            !e.to_string().contains("not base64!"),
            "the key leaked: {e}"
        );
        let e = AzureOptions {
            block_size: 0,
            ..AzureOptions::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("block_size"), "{e}");
    }

    #[test]
    fn entra_id_is_chosen_offline_and_refused_over_http() {
        let sp = [
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ];
        assert_eq!(entra_kind(&sp), EntraKind::ServicePrincipal);
        assert_eq!(
            entra_kind(&[
                ("AZURE_FEDERATED_TOKEN_FILE", "/x"),
                ("AZURE_CLIENT_ID", "c")
            ]),
            EntraKind::WorkloadIdentity
        );
        assert_eq!(
            entra_kind(&[("IDENTITY_ENDPOINT", "http://x")]),
            EntraKind::ManagedIdentity
        );
        assert_eq!(
            entra_kind(&[("AZURE_CLIENT_ID", "c")]),
            EntraKind::ManagedIdentity
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(entra_kind(&none), EntraKind::DeveloperTools);

        // No key, no SAS: Entra ID, built without a request.
        let env = [
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ];
        let r = resolve(&env, &AzureOptions::default(), None).unwrap();
        assert!(matches!(r.credential, AzureCredential::Token(_)));
        assert_eq!(format!("{:?}", r.credential), "Token(Entra ID)");
        let env = [
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:1/acct"),
        ];
        let e = resolve(&env, &AzureOptions::default(), None).unwrap_err();
        assert!(e.to_string().contains("only sent over HTTPS"), "{e}");
    }

    #[test]
    fn tiers_and_env_tuning() {
        assert_eq!(AccessTier::parse("COOL").unwrap(), AccessTier::Cool);
        assert!(AccessTier::parse("lukewarm").is_err());
        let env = [
            ("S3DLIO_AZURE_ACCESS_TIER", "cold"),
            ("S3DLIO_AZURE_BLOCK_SIZE", "4MiB"),
        ];
        let o = AzureOptions::default().env_overrides(&env).unwrap();
        assert_eq!(o.access_tier, Some(AccessTier::Cold));
        assert_eq!(o.block_size, 4 * MIB);
        let e = AzureOptions::default()
            .env_overrides(&[("S3DLIO_AZURE_ACCESS_TIER", "x")])
            .unwrap_err();
        assert!(e.to_string().contains("S3DLIO_AZURE_ACCESS_TIER"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let o = AzureOptions {
            credential: Some(AzureCredential::AccountKey("c2VjcmV0".into())),
            ..AzureOptions::default()
        };
        assert!(!format!("{o:?}").contains("c2VjcmV0"));
        let s = format!("{:?}", AzureCredential::Sas("sig=abc".into()));
        assert!(!s.contains("abc"));
    }
}
