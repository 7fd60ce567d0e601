//! A recording relay for tests that must see what goes on the wire: every request of
//! every request path (wire, lean, SDK), as a server receives it.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A relay on 127.0.0.1 to `target` (host:port) that keeps every byte clients send, one
/// buffer per connection (see [`requests`]).
pub async fn relay(target: String) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                continue;
            };
            let log = Arc::clone(&log);
            let conn = {
                let mut log = log.lock().unwrap();
                log.push(Vec::new());
                log.len() - 1
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = client_rx.read(&mut buf).await {
                    if n == 0 || server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    log.lock().unwrap()[conn].extend_from_slice(&buf[..n]);
                }
                let _ = server_tx.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                let _ = client_tx.shutdown().await;
            });
        }
    });
    (url, sent)
}

/// One request a relay saw: its request line and headers.
#[derive(Debug)]
pub struct Recorded {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The requests in each connection's recorded bytes: heads parsed, bodies skipped by their
/// length or their chunks.
pub fn requests(sent: &[Vec<u8>]) -> Vec<Recorded> {
    let line_end = |b: &[u8]| b.windows(2).position(|w| w == b"\r\n").unwrap();
    let mut out = Vec::new();
    for mut rest in sent.iter().map(Vec::as_slice) {
        while !rest.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(rest) else {
                panic!("a request head that does not parse");
            };
            let r = Recorded {
                line: format!("{} {}", req.method.unwrap(), req.path.unwrap()),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_owned(), v)
                    })
                    .collect(),
            };
            rest = &rest[head..];
            if let Some(len) = r.header("content-length") {
                rest = &rest[len.parse::<usize>().unwrap()..];
            } else if r
                .header("transfer-encoding")
                .is_some_and(|v| v.contains("chunked"))
            {
                loop {
                    let eol = line_end(rest);
                    let size = std::str::from_utf8(&rest[..eol]).unwrap();
                    let size = usize::from_str_radix(size.split(';').next().unwrap(), 16).unwrap();
                    rest = &rest[eol + 2..];
                    if size == 0 {
                        // Trailers, then the blank line.
                        loop {
                            let eol = line_end(rest);
                            rest = &rest[eol + 2..];
                            if eol == 0 {
                                break;
                            }
                        }
                        break;
                    }
                    rest = &rest[size + 2..];
                }
            }
            out.push(r);
        }
    }
    out
}
