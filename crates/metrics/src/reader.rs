//! Reading op-logs back: ours and warp's, zstd-compressed or plain, into typed rows, and
//! per-operation summaries of them.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use crate::export::{human_bytes, human_duration};
use crate::time::Timestamp;

/// One row of an op-log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpLogRow {
    pub idx: u64,
    pub thread: u64,
    pub op: String,
    pub client_id: String,
    pub n_objects: u64,
    pub bytes: u64,
    pub endpoint: String,
    pub file: String,
    /// Empty when the operation succeeded.
    pub error: String,
    pub start: Timestamp,
    pub first_byte: Option<Timestamp>,
    pub end: Timestamp,
    pub duration_ns: u64,
}

impl OpLogRow {
    pub fn is_error(&self) -> bool {
        !self.error.is_empty()
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.duration_ns)
    }

    /// From the start to the first byte, where the log has one.
    pub fn ttfb(&self) -> Option<Duration> {
        let ns = self.first_byte?.nanos_since(self.start);
        u64::try_from(ns).ok().map(Duration::from_nanos)
    }
}

/// A whole op-log: its rows and its `#` comment lines (without the `# `).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpLogFile {
    pub rows: Vec<OpLogRow>,
    pub comments: Vec<String>,
}

const COLUMNS: [&str; 13] = [
    "idx",
    "thread",
    "op",
    "client_id",
    "n_objects",
    "bytes",
    "endpoint",
    "file",
    "error",
    "start",
    "first_byte",
    "end",
    "duration_ns",
];

/// zstd frames start with these bytes.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Read an op-log file, compressed or not.
pub fn read_op_log(path: impl AsRef<Path>) -> io::Result<OpLogFile> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| with_path(e, path))?;
    parse_op_log(f).map_err(|e| with_path(e, path))
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Parse an op-log from any reader, compressed or not. The header must name warp's 13
/// columns first (later columns, as newer warp versions add, are ignored).
pub fn parse_op_log(r: impl Read) -> io::Result<OpLogFile> {
    let mut r = BufReader::new(r);
    let compressed = r.fill_buf()?.starts_with(&ZSTD_MAGIC);
    let mut lines: Box<dyn BufRead> = if compressed {
        Box::new(BufReader::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Box::new(r)
    };
    let bad = |n: usize, msg: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("line {n}: {msg}"))
    };
    let mut header = String::new();
    lines.read_line(&mut header)?;
    let names: Vec<&str> = header.trim_end_matches(['\n', '\r']).split('\t').collect();
    if names.len() < COLUMNS.len() || names[..COLUMNS.len()] != COLUMNS {
        return Err(bad(
            1,
            format!("not an op-log header: {:?}", header.trim_end()),
        ));
    }
    let mut out = OpLogFile::default();
    let mut line = String::new();
    let mut n = 1;
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            break;
        }
        n += 1;
        let l = line.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            continue;
        }
        if let Some(c) = l.strip_prefix('#') {
            out.comments.push(c.trim_start().to_owned());
            continue;
        }
        out.rows.push(parse_row(l).map_err(|m| bad(n, m))?);
    }
    Ok(out)
}

fn parse_row(l: &str) -> Result<OpLogRow, String> {
    let f: Vec<&str> = l.split('\t').collect();
    if f.len() < COLUMNS.len() {
        return Err(format!("{} columns, expected {}", f.len(), COLUMNS.len()));
    }
    let num = |i: usize| -> Result<u64, String> {
        f[i].parse()
            .map_err(|_| format!("{}: '{}' is not a number", COLUMNS[i], f[i]))
    };
    let time = |i: usize| -> Result<Timestamp, String> {
        Timestamp::parse(f[i])
            .ok_or_else(|| format!("{}: '{}' is not an RFC 3339 time", COLUMNS[i], f[i]))
    };
    Ok(OpLogRow {
        idx: num(0)?,
        thread: num(1)?,
        op: f[2].to_owned(),
        client_id: f[3].to_owned(),
        n_objects: num(4)?,
        bytes: num(5)?,
        endpoint: f[6].to_owned(),
        file: f[7].to_owned(),
        error: f[8].to_owned(),
        start: time(9)?,
        first_byte: if f[10].is_empty() {
            None
        } else {
            Some(time(10)?)
        },
        end: time(11)?,
        duration_ns: num(12)?,
    })
}

/// Per-operation figures of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSummary {
    pub op: String,
    pub count: u64,
    pub errors: u64,
    pub objects: u64,
    /// Bytes of the rows without an error.
    pub bytes: u64,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Median time to first byte, over the rows that have one.
    pub ttfb_p50: Option<Duration>,
    /// From the first start to the last end of this operation's rows.
    pub span: Duration,
}

impl OpSummary {
    pub fn ops_per_sec(&self) -> f64 {
        rate(self.count as f64, self.span)
    }

    pub fn bytes_per_sec(&self) -> f64 {
        rate(self.bytes as f64, self.span)
    }
}

fn rate(x: f64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        x / d.as_secs_f64()
    }
}

/// Exact quantile (nearest rank) of sorted values.
fn quantile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Duration::from_nanos(sorted[rank - 1])
}

/// One summary per operation name, in name order.
pub fn summarize(rows: &[OpLogRow]) -> Vec<OpSummary> {
    let mut by_op: BTreeMap<&str, Vec<&OpLogRow>> = BTreeMap::new();
    for r in rows {
        by_op.entry(r.op.as_str()).or_default().push(r);
    }
    by_op
        .into_iter()
        .map(|(op, rs)| {
            let mut d: Vec<u64> = rs.iter().map(|r| r.duration_ns).collect();
            d.sort_unstable();
            let mut fb: Vec<u64> = rs
                .iter()
                .filter_map(|r| r.ttfb())
                .map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
                .collect();
            fb.sort_unstable();
            let first = rs.iter().map(|r| r.start).min().unwrap_or(Timestamp(0));
            let last = rs.iter().map(|r| r.end).max().unwrap_or(Timestamp(0));
            let total: u128 = d.iter().map(|&x| u128::from(x)).sum();
            OpSummary {
                op: op.to_owned(),
                count: rs.len() as u64,
                errors: rs.iter().filter(|r| r.is_error()).count() as u64,
                objects: rs.iter().map(|r| r.n_objects).sum(),
                bytes: rs.iter().filter(|r| !r.is_error()).map(|r| r.bytes).sum(),
                mean: Duration::from_nanos((total / d.len().max(1) as u128) as u64),
                p50: quantile(&d, 0.5),
                p90: quantile(&d, 0.9),
                p99: quantile(&d, 0.99),
                max: quantile(&d, 1.0),
                ttfb_p50: (!fb.is_empty()).then(|| quantile(&fb, 0.5)),
                span: Duration::from_nanos(u64::try_from(last.nanos_since(first)).unwrap_or(0)),
            }
        })
        .collect()
}

/// The summaries as a table (what `s3-cli oplog stats` prints).
#[derive(Debug)]
pub struct SummaryTable<'a>(pub &'a [OpSummary]);

impl fmt::Display for SummaryTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>9} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>10}",
            "op",
            "count",
            "errors",
            "bytes",
            "mean",
            "p50",
            "p99",
            "max",
            "ttfb p50",
            "span",
            "bytes/s",
            "ops/s"
        )?;
        for s in self.0 {
            writeln!(
                f,
                "{:<8} {:>9} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>10.1}",
                s.op,
                s.count,
                s.errors,
                human_bytes(s.bytes as f64),
                human_duration(s.mean),
                human_duration(s.p50),
                human_duration(s.p99),
                human_duration(s.max),
                s.ttfb_p50.map_or("-".to_owned(), human_duration),
                human_duration(s.span),
                human_bytes(s.bytes_per_sec()) + "/s",
                s.ops_per_sec()
            )?;
        }
        Ok(())
    }
}
