//! ListObjectsV2 pages on the lean path: the query built here, the answer read with
//! quick-xml. Pages come one after another (each needs the last one's token), so the
//! client's time per page is on the critical path of every listing: the SDK's generic XML
//! deserialiser spends about 4.6 ms of CPU per 1,000 keys, this reader a fraction of it.

use std::time::SystemTime;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use quick_xml::events::Event;
use s3dlio_store_core::{Error, ErrorKind, ListItem, ListPage, ObjectMeta, Result};

pub(crate) type Page = ListPage;

/// What one page asks for.
#[derive(Debug)]
pub(crate) struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub start_after: Option<&'a str>,
    pub token: Option<&'a str>,
    pub max_keys: usize,
}

impl ListQuery<'_> {
    /// The query string, each value percent-encoded as SigV4 canonicalises it.
    pub fn to_query(&self) -> String {
        let mut q = format!("list-type=2&max-keys={}", self.max_keys);
        let mut add = |name: &str, v: Option<&str>| {
            if let Some(v) = v {
                q.push('&');
                q.push_str(name);
                q.push('=');
                q.push_str(&encode(v));
            }
        };
        add("prefix", Some(self.prefix));
        add("delimiter", self.delimiter);
        add("start-after", self.start_after);
        add("continuation-token", self.token);
        q
    }
}

/// Every byte but unreserved characters percent-encoded (`/` too: a query value).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `ListBucketResult` document as one page: objects and common prefixes merged in key
/// order (S3 sends them as two sorted lists), and the token of the next page if truncated.
pub(crate) fn parse(xml: &str) -> Result<Page> {
    let bad = |what: String| {
        // A cut or garbled answer: worth another try.
        Error::new(
            ErrorKind::Interrupted,
            format!("unreadable listing answer: {what}"),
        )
        .set_retryable(true)
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    // Element names from the root down, and the text of the innermost.
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut items = Vec::new();
    let mut object: Option<ObjectMeta> = None;
    let mut truncated = false;
    let mut next = None;
    let mut root_seen = false;
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "ListBucketResult" {
                        return Err(bad(format!("root element <{name}>")));
                    }
                    root_seen = true;
                }
                if path.len() == 1 && name == "Contents" {
                    object = Some(ObjectMeta::new("", 0));
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| bad(e.to_string()))?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| bad(e.to_string()))?),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| bad(e.to_string()))?;
                    let v = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| bad(format!("unknown entity &{name};")))?;
                    text.push_str(v);
                }
            }
            Event::End(_) => {
                let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
                match (parent, path.last().map(String::as_str)) {
                    (Some("Contents"), Some(field)) => {
                        if let Some(o) = object.as_mut() {
                            object_field(o, field, &text).map_err(bad)?;
                        }
                    }
                    (Some("CommonPrefixes"), Some("Prefix")) => {
                        items.push(ListItem::Prefix(std::mem::take(&mut text)));
                    }
                    (Some("ListBucketResult"), Some("Contents")) => {
                        if let Some(o) = object.take() {
                            if o.key.is_empty() {
                                return Err(bad("an object without a key".into()));
                            }
                            items.push(ListItem::Object(o));
                        }
                    }
                    (Some("ListBucketResult"), Some("IsTruncated")) => {
                        truncated = text.trim() == "true";
                    }
                    (Some("ListBucketResult"), Some("NextContinuationToken")) => {
                        next = Some(std::mem::take(&mut text));
                    }
                    (Some("ListBucketResult"), Some("EncodingType")) => {
                        // Asked for raw keys; an encoded answer would be misread.
                        return Err(Error::other(format!(
                            "the server encoded the listing's keys ({})",
                            text.trim()
                        )));
                    }
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen || !path.is_empty() {
        return Err(bad("the document ended early".into()));
    }
    items.sort_by(|a, b| a.name().cmp(b.name()));
    let next = if truncated { next } else { None };
    if truncated && next.is_none() {
        return Err(Error::other(
            "the listing is truncated but names no continuation token",
        ));
    }
    Ok(Page { items, next })
}

fn object_field(o: &mut ObjectMeta, field: &str, text: &str) -> std::result::Result<(), String> {
    match field {
        "Key" => o.key = text.to_owned(),
        "Size" => {
            o.size = text.trim().parse().map_err(|_| format!("size '{text}'"))?;
        }
        "ETag" => o.etag = Some(text.to_owned()),
        "LastModified" => {
            o.last_modified = DateTime::from_str(text.trim(), Format::DateTime)
                .ok()
                .and_then(|d| SystemTime::try_from(d).ok());
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_with_entities_prefixes_and_tokens() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
<NextContinuationToken>tok&amp;en=</NextContinuationToken>
<Contents><Key>p/b &amp; c&#x0D;&lt;x&gt;</Key><LastModified>2026-11-28T08:00:00.000Z</LastModified>
<ETag>&quot;abc&quot;</ETag><Size>42</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/a</Key><LastModified>2026-11-28T08:00:01Z</LastModified><ETag>"d"</ETag><Size>0</Size></Contents>
<CommonPrefixes><Prefix>p/ab/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let page = parse(xml).unwrap();
        let names: Vec<&str> = page.items.iter().map(ListItem::name).collect();
        assert_eq!(names, ["p/a", "p/ab/", "p/b & c\r<x>"]);
        assert_eq!(page.next.as_deref(), Some("tok&en="));
        let ListItem::Object(o) = &page.items[2] else {
            panic!("{:?}", page.items[2])
        };
        assert_eq!((o.size, o.etag.as_deref()), (42, Some("\"abc\"")));
        let t = o.last_modified.unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_795_852_800
        );
        assert!(matches!(&page.items[1], ListItem::Prefix(p) if p == "p/ab/"));
    }

    #[test]
    fn the_last_page_has_no_token_and_bad_documents_are_errors() {
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated>\
                    <NextContinuationToken>x</NextContinuationToken></ListBucketResult>";
        let page = parse(last).unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
        for bad in [
            "<ListBucketResult><Contents><Key>a</Key>",
            "<Error><Code>X</Code></Error>",
            "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
            "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
            "<ListBucketResult><Contents><Key>a</Key><Size>z</Size></Contents></ListBucketResult>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries_encode_every_reserved_byte() {
        let q = ListQuery {
            prefix: "a b/c+d",
            delimiter: Some("/"),
            start_after: None,
            token: Some("t=1&x"),
            max_keys: 97,
        };
        assert_eq!(
            q.to_query(),
            "list-type=2&max-keys=97&prefix=a%20b%2Fc%2Bd&delimiter=%2F&continuation-token=t%3D1%26x"
        );
    }
}
