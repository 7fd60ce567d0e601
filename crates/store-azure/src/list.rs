//! The List Blobs answer (XML) read into listing entries. A small reader for the one
//! document shape the service sends: elements, text and the five entities plus character
//! references; no namespaces, DTDs or CDATA appear in it.

use std::collections::BTreeMap;

use s3dlio_store_core::{Error, ListItem, ObjectMeta, Result};

use crate::client::http_date;

/// Replace XML entities and character references.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| ent.strip_prefix('#').map(str::parse::<u32>))
                .and_then(|r| r.ok())
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One page of List Blobs: its entries in document order and the next marker.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub items: Vec<ListItem>,
    pub next_marker: Option<String>,
}

/// Read a List Blobs response body.
pub(crate) fn parse_list(xml: &str) -> Result<Parsed> {
    let bad = |what: &str| Error::other(format!("unreadable List Blobs answer: {what}"));
    let mut out = Parsed::default();
    // The open elements, outermost first.
    let mut path: Vec<String> = Vec::new();
    // Whether the current <Name> is percent-encoded (Encoded="true").
    let mut encoded = false;
    let mut blob: Option<ObjectMeta> = None;
    let mut prefix: Option<String> = None;
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if !text.is_empty() {
            let value = unescape(text);
            let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
            let leaf = path.last().map(String::as_str);
            match (parent, leaf) {
                (Some("Blob"), Some("Name")) => {
                    let name = if encoded {
                        crate::auth::percent_decode(&value)
                    } else {
                        value
                    };
                    if let Some(b) = blob.as_mut() {
                        b.key = name;
                    }
                }
                (Some("BlobPrefix"), Some("Name")) => {
                    prefix = Some(if encoded {
                        crate::auth::percent_decode(&value)
                    } else {
                        value
                    });
                }
                (Some("Properties"), Some(field)) => {
                    if let Some(b) = blob.as_mut() {
                        match field {
                            "Content-Length" => {
                                b.size = value.trim().parse().map_err(|_| bad("Content-Length"))?
                            }
                            "Etag" => b.etag = Some(value),
                            "Last-Modified" => b.last_modified = http_date(&value),
                            "Content-Type" => {
                                b.content_type = Some(value).filter(|v| !v.is_empty())
                            }
                            "AccessTier" => b.storage_class = Some(value),
                            _ => {}
                        }
                    }
                }
                (Some("Metadata"), Some(name)) => {
                    if let Some(b) = blob.as_mut() {
                        b.metadata.insert(name.to_owned(), value);
                    }
                }
                (_, Some("NextMarker")) if path.len() == 2 => {
                    out.next_marker = Some(value).filter(|m| !m.is_empty());
                }
                _ => {}
            }
        }
        let after = &rest[lt + 1..];
        let gt = after.find('>').ok_or_else(|| bad("an unclosed tag"))?;
        let tag = &after[..gt];
        rest = &after[gt + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            if path.last().map(String::as_str) != Some(name) {
                return Err(bad("mismatched tags"));
            }
            path.pop();
            match name {
                "Blob" => out.items.extend(blob.take().map(ListItem::Object)),
                "BlobPrefix" => out.items.extend(prefix.take().map(ListItem::Prefix)),
                _ => {}
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if self_closing {
            continue;
        }
        if name == "Name" {
            encoded = attrs.replace(' ', "").contains("Encoded=\"true\"");
        }
        if name == "Blob" {
            blob = Some(ObjectMeta {
                metadata: BTreeMap::new(),
                ..ObjectMeta::new(String::new(), 0)
            });
        }
        path.push(name.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blobs_prefixes_metadata_and_marker() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1/devstoreaccount1" ContainerName="c">
<Prefix>p/</Prefix><MaxResults>2</MaxResults><Delimiter>/</Delimiter>
<Blobs><Blob><Name>p/a &amp; b</Name><Properties><Last-Modified>Fri, 27 Nov 2026 10:00:00 GMT</Last-Modified><Etag>0x8DC</Etag><Content-Length>12</Content-Length><Content-Type>text/plain</Content-Type><AccessTier>Cool</AccessTier></Properties><Metadata><origin>t</origin></Metadata></Blob>
<BlobPrefix><Name>p/d/</Name></BlobPrefix>
<Blob><Name Encoded="true">p/%EF%BF%BE</Name><Properties><Content-Length>0</Content-Length><Content-Type /></Properties><Metadata /></Blob></Blobs>
<NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let p = parse_list(xml).unwrap();
        assert_eq!(p.next_marker.as_deref(), Some("2!abc"));
        assert_eq!(p.items.len(), 3);
        let ListItem::Object(a) = &p.items[0] else {
            panic!("{:?}", p.items[0])
        };
        assert_eq!(a.key, "p/a & b");
        assert_eq!(a.size, 12);
        assert_eq!(a.etag.as_deref(), Some("0x8DC"));
        assert_eq!(a.storage_class.as_deref(), Some("Cool"));
        assert_eq!(a.metadata.get("origin").map(String::as_str), Some("t"));
        assert!(a.last_modified.is_some());
        assert_eq!(p.items[1], ListItem::Prefix("p/d/".into()));
        assert_eq!(p.items[2].name(), "p/\u{fffe}");
        let empty =
            parse_list("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>").unwrap();
        assert!(empty.items.is_empty() && empty.next_marker.is_none());
    }

    #[test]
    fn entities() {
        assert_eq!(
            unescape("a&lt;b&gt;&#65;&#x42;&quot;&apos;&bogus;"),
            "a<b>AB\"'&bogus;"
        );
    }
}
