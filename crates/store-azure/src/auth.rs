//! Authorization policies for the azure_core pipeline: Shared Key (the account key signs
//! every request, which Microsoft's 1.x blob crate leaves out) and SAS (the signature
//! appended to every request's query). Entra ID uses azure_core's own bearer-token policy.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use azure_core::time::{to_rfc7231, OffsetDateTime};

/// Signs each try of a request with the account key (Shared Key authorization, as the
/// Azure Storage REST documentation defines it for service version 2015-02-21 and later).
pub(crate) struct SharedKeyPolicy {
    account: String,
    key: Secret,
}

impl std::fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeyPolicy")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SharedKeyPolicy {
    pub fn new(account: &str, key: &str) -> Self {
        Self {
            account: account.to_owned(),
            key: Secret::new(key.to_owned()),
        }
    }
}

/// Percent-decoding of `%XX` escapes (a `+` stays a `+`, as the service reads it).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The string Shared Key signs. `headers` are (lowercase name, value) pairs of the
/// request; `path` is the URL's encoded path and `query` its raw query.
pub(crate) fn string_to_sign(
    method: &str,
    account: &str,
    path: &str,
    query: Option<&str>,
    headers: &[(String, String)],
    content_length: u64,
) -> String {
    let h = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut s = format!(
        "{method}\n{}\n{}\n{length}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        h("content-encoding"),
        h("content-language"),
        h("content-md5"),
        h("content-type"),
        h("date"),
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
    );
    let mut ms: Vec<(&str, String)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.as_str(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    ms.sort();
    for (k, v) in ms {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{account}{path}"));
    let mut params: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k).to_ascii_lowercase(), percent_decode(v))
        })
        .collect();
    params.sort();
    // Repeated names are joined with commas.
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let mut values = Vec::new();
        while i < params.len() && params[i].0 == name {
            values.push(params[i].1.clone());
            i += 1;
        }
        s.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    s
}

// The trait's signature elides the context's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        request.insert_header("x-ms-date", to_rfc7231(&OffsetDateTime::now_utc()));
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_owned()))
            .collect();
        let len = request.body().len().unwrap_or(0);
        let url = request.url();
        let sts = string_to_sign(
            request.method().as_ref(),
            &self.account,
            url.path(),
            url.query(),
            &headers,
            len,
        );
        let sig = azure_core::hmac::hmac_sha256(&sts, &self.key)?;
        request.insert_header("authorization", format!("SharedKey {}:{sig}", self.account));
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Appends a shared access signature to every request's query.
pub(crate) struct SasPolicy {
    sas: Secret,
}

impl std::fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasPolicy(<redacted>)")
    }
}

impl SasPolicy {
    pub fn new(sas: &str) -> Self {
        Self {
            sas: Secret::new(sas.trim_start_matches('?').to_owned()),
        }
    }
}

// The trait's signature elides the context's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let sas = self.sas.secret();
        let url = request.url_mut();
        // Retries run this policy again on the same request: append once.
        if !url.query().is_some_and(|q| q.contains(sas)) {
            let q = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{sas}"),
                _ => sas.to_owned(),
            };
            url.set_query(Some(&q));
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_follows_the_rest_docs() {
        let headers = vec![
            ("x-ms-version".to_owned(), "2025-01-05".to_owned()),
            (
                "x-ms-date".to_owned(),
                "Fri, 27 Nov 2026 10:00:00 GMT".to_owned(),
            ),
            ("content-type".to_owned(), "text/plain".to_owned()),
            ("if-match".to_owned(), "\"0x1\"".to_owned()),
            ("x-ms-meta-a".to_owned(), "  two   words ".to_owned()),
            ("user-agent".to_owned(), "ignored".to_owned()),
        ];
        let s = string_to_sign(
            "PUT",
            "acct",
            "/acct/cont/a%20b",
            Some("comp=block&blockid=QUJD%3D&restype=x&comp=z"),
            &headers,
            5,
        );
        assert_eq!(
            s,
            "PUT\n\n\n5\n\ntext/plain\n\n\n\"0x1\"\n\n\n\n\
             x-ms-date:Fri, 27 Nov 2026 10:00:00 GMT\nx-ms-meta-a:two words\n\
             x-ms-version:2025-01-05\n/acct/acct/cont/a%20b\nblockid:QUJD=\ncomp:block,z\nrestype:x"
        );
        // A zero length is an empty field.
        let s = string_to_sign("GET", "a", "/c", None, &[], 0);
        assert_eq!(s, "GET\n\n\n\n\n\n\n\n\n\n\n\n/a/c");
    }

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(percent_decode("a%2Fb+c%3d"), "a/b+c=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
