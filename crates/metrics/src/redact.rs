//! Keeping secrets out of logs. URIs can carry credentials: an Azure SAS token in the query
//! string (`?sv=...&sig=...`), a presigned S3 URL (`X-Amz-Signature=`, `X-Amz-Credential=`,
//! `X-Amz-Security-Token=`), or a user and password (`https://user:pass@host/`). Every URI
//! and error message the op-log and the tracing spans write goes through [`redact`] first.

use std::borrow::Cow;

/// What a removed secret is replaced by.
pub const REDACTED: &str = "REDACTED";

/// Query parameters that hold secrets wherever they appear (compared case-insensitively).
const SECRET_PARAMS: [&str; 9] = [
    "sig",
    "signature",
    "credential",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "token",
    "access_key",
    "secret",
];

/// `text` with the query string of every URI replaced by `?REDACTED`, user info removed
/// from every URI (`scheme://user:pass@host` becomes `scheme://REDACTED@host`), and the value
/// of any secret-looking `name=value` pair replaced. Borrowed when there was nothing to do.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !needs_redaction(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // Work token by token (URIs end at whitespace or quotes).
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        let (token, tail) = rest.split_at(end);
        redact_token(token, &mut out);
        let sep_len = tail.chars().next().map_or(0, char::len_utf8);
        out.push_str(&tail[..sep_len]);
        rest = &tail[sep_len..];
    }
    Cow::Owned(out)
}

fn needs_redaction(text: &str) -> bool {
    text.contains("://") && (text.contains('?') || text.contains('@')) || text.contains('=')
}

fn redact_token(token: &str, out: &mut String) {
    let mut token = Cow::Borrowed(token);
    if let Some(scheme_end) = token.find("://") {
        let after = scheme_end + 3;
        let auth_end = token[after..]
            .find(['/', '?', '#'])
            .map_or(token.len(), |i| after + i);
        if let Some(at) = token[after..auth_end].rfind('@') {
            token = Cow::Owned(format!(
                "{}{REDACTED}{}",
                &token[..after],
                &token[after + at..]
            ));
        }
        if let Some(q) = token.find('?') {
            // Punctuation after the URI (`GET uri?q: not found`) is kept.
            let tail = token.len() - token.trim_end_matches([':', ',', ';', ')']).len();
            out.push_str(&token[..q]);
            out.push('?');
            out.push_str(REDACTED);
            out.push_str(&token[token.len() - tail..]);
            return;
        }
    }
    // Outside URIs (or URIs without a query): secret-looking pairs, e.g. in error text.
    let mut first = true;
    for pair in token.split('&') {
        if !first {
            out.push('&');
        }
        first = false;
        match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
}

fn is_secret_param(name: &str) -> bool {
    let name = name.rsplit(['?', ';', ',', '(']).next().unwrap_or(name);
    SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_user_info_are_removed() {
        assert_eq!(
            redact("https://acct.blob.core.windows.net/c/k?sv=2024&sig=abc%2F"),
            "https://acct.blob.core.windows.net/c/k?REDACTED"
        );
        assert_eq!(
            redact("GET az://acct/c/k?se=2030&sig=SECRET: not found"),
            "GET az://acct/c/k?REDACTED: not found"
        );
        assert_eq!(
            redact("http://AKIA:topsecret@127.0.0.1:9000/b/k"),
            "http://REDACTED@127.0.0.1:9000/b/k"
        );
        assert_eq!(
            redact("request failed: X-Amz-Signature=deadbeef&X-Amz-Date=1"),
            "request failed: X-Amz-Signature=REDACTED&X-Amz-Date=1"
        );
        assert_eq!(redact("sig=abc"), "sig=REDACTED");
        assert_eq!(
            redact("Authorization: AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=ff"),
            "Authorization: AWS4-HMAC-SHA256 Credential=REDACTED Signature=REDACTED"
        );
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "s3://bucket/a b/c+%.bin",
            "file:///tmp/x",
            "not found: key a=b",
        ] {
            assert_eq!(redact(s), s);
        }
        assert!(matches!(redact("s3://bucket/key"), Cow::Borrowed(_)));
    }
}
