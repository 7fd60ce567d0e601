//! Read every object under a URI prefix through the loader and report what it cost, as one
//! JSON line on stdout: `{"samples":N,"bytes":M,"wall_s":W,"cpu_s":C,...}`. The s3dlio side
//! of the loader benchmark (samples/s = samples / wall_s). The line also gives the batch
//! latency, the time from one batch's delivery to the next one's (the first from the start
//! of its epoch), as a training loop waits for it: `p50_ms` ... `max_ms` and the HDR
//! histogram's buckets, `"latency_ns":[[V,C],...]`.
//!
//! ```text
//! s3-cli put file:///tmp/bench/ -n 10000 -s 64KiB            # the data, any way you like
//! loader_bench file:///tmp/bench/ [-n 10000] [-s 64KiB]      # read it back as batches
//!              [-b BATCH] [-j IN_FLIGHT] [-p PREFETCH] [--mem BYTES]
//!              [--unordered] [--shuffle] [--epochs E]
//! ```
//!
//! Defaults: batch 32, 64 requests in flight, prefetch 8 batches, 1 GiB memory bound,
//! ordered, no shuffle, one epoch.
//!
//! `file://` and `s3://` prefixes (the latter with endpoint and credentials from the standard
//! AWS environment: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).
//!
//! Only the reading is timed (not the store's set-up).
//! `wall_s` is its wall time and `cpu_s` this process's user + system CPU over it
//! (`getrusage`), measured the same way as `s3_load` and the peers' scripts. With `-n` and
//! `-s`, `read` checks that exactly N samples of SIZE bytes arrived per epoch.

use std::time::{Duration, Instant};

use futures::StreamExt;
use s3dlio_loader::{Dataset, Loader, LoaderOptions};
use s3dlio_metrics::hdrhistogram::Histogram;
use s3dlio_store_core::{parse_count, parse_size, Registry};

const USAGE: &str = "usage: loader_bench URI_PREFIX [-n COUNT] [-s SIZE] [-b BATCH] \
                     [-j IN_FLIGHT] [-p PREFETCH] [--mem BYTES] [--unordered] [--shuffle] \
                     [--epochs E]";

struct Args {
    uri: String,
    count: Option<u64>,
    size: Option<u64>,
    opts: LoaderOptions,
    epochs: u64,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let uri = it.next().ok_or(USAGE)?;
    let mut a = Args {
        uri,
        count: None,
        size: None,
        opts: LoaderOptions {
            batch_size: 32,
            rank: Some(0),
            world_size: Some(1),
            ..LoaderOptions::default()
        },
        epochs: 1,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--unordered" => {
                a.opts.ordered = false;
                continue;
            }
            "--shuffle" => {
                a.opts.shuffle = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = |v: &str| parse_count(v).map_err(|e| format!("{flag}: {e}"));
        let size = |v: &str| parse_size(v).map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "-n" => a.count = Some(count(&v)?),
            "-s" => a.size = Some(size(&v)?),
            "-b" => a.opts.batch_size = count(&v)? as usize,
            "-j" => a.opts.max_in_flight = count(&v)? as usize,
            "-p" => a.opts.prefetch = count(&v)? as usize,
            "--mem" => a.opts.max_prefetch_bytes = size(&v)?,
            "--epochs" => a.epochs = count(&v)?,
            other => return Err(format!("unknown option '{other}'\n{USAGE}")),
        }
    }
    Ok(a)
}

/// User + system CPU time of this whole process (every thread) so far.
fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct, and getrusage only
    // writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the out-pointer is valid for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn registry() -> Registry {
    let mut r = Registry::new();
    s3dlio_store_fs::register(&mut r);
    s3dlio_store_s3::register(&mut r);
    r
}

/// Samples, bytes, wall and CPU time, and each batch's latency in nanoseconds.
type Outcome = (u64, u64, Duration, Duration, Histogram<u64>);

async fn run(a: Args) -> Result<Outcome, Box<dyn std::error::Error>> {
    let registry = registry();
    let dataset = Dataset::from_uri(&registry, &a.uri).await?;
    let loader = Loader::new(dataset, a.opts.clone())?;
    let (start, cpu0) = (Instant::now(), cpu_time());
    let (mut samples, mut bytes) = (0u64, 0u64);
    let mut latency = Histogram::<u64>::new(3)?;
    for epoch in 0..a.epochs {
        let mut stream = loader.epoch(epoch);
        let mut in_epoch = 0u64;
        let mut last = Instant::now();
        while let Some(batch) = stream.next().await {
            let now = Instant::now();
            // Grows to fit (the saturating variant would clamp to its initial range).
            let _ = latency.record(u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX));
            last = now;
            for s in batch?.samples {
                if let Some(want) = a.size {
                    if s.data.len() as u64 != want {
                        return Err(
                            format!("{}: {} bytes, expected {want}", s.uri, s.data.len()).into(),
                        );
                    }
                }
                in_epoch += 1;
                bytes += s.data.len() as u64;
            }
        }
        if let Some(want) = a.count {
            if in_epoch != want {
                return Err(format!("epoch {epoch}: {in_epoch} samples, expected {want}").into());
            }
        }
        samples += in_epoch;
    }
    Ok((
        samples,
        bytes,
        start.elapsed(),
        cpu_time().saturating_sub(cpu0),
        latency,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (samples, bytes, wall, cpu, latency) = rt.block_on(run(a))?;
    println!(
        "{{\"samples\":{samples},\"bytes\":{bytes},\"wall_s\":{:.6},\"cpu_s\":{:.6}{}}}",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        s3dlio_metrics::latency_json_fields(&latency)
    );
    Ok(())
}
