//! Synthetic data generation as `s3-cli put` does it, without any storage: the generator
//! side of `cargo xtask bench datagen`.
//!
//! ```text
//! datagen_bench speed  -n COUNT -s SIZE [-d DEDUP] [-x COMPRESS] [-o raw|npz|tfrecord]
//!                      [--rank R --ranks N] [--start-at UNIX_SECONDS]
//! datagen_bench ratios -n COUNT -s SIZE [-d DEDUP] [-x COMPRESS]
//! ```
//!
//! `speed` generates COUNT objects of SIZE payload bytes on one thread, chunk by chunk with
//! `put`'s chunk size, and prints `{"bytes":N,"start_unix_s":S,"end_unix_s":E}` (the caller
//! measures the process's CPU time). With `--rank R --ranks N` it generates rank R's share
//! of the COUNT objects, as `s3-cli put --rank R --ranks N` does; `--start-at` waits until
//! then first, so N processes start together. `ratios` generates the same objects and measures what a deduplicating store and a
//! compressor would see: distinct 64 KiB blocks (by content) and zstd level 3 per block,
//! printing `{"blocks":B,"distinct":D,"raw":R,"packed":P}`.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s3dlio_cli::datagen::{
    rank_share, DataSpec, Format, ObjectGen, Payload, BLOCK_SIZE, DEFAULT_CHUNK_SIZE,
};
use s3dlio_store_core::{parse_count, parse_size};

const USAGE: &str = "usage: datagen_bench speed|ratios -n COUNT -s SIZE [-d DEDUP] \
                     [-x COMPRESS] [-o raw|npz|tfrecord] [--rank R --ranks N] \
                     [--start-at UNIX_SECONDS]";

struct Args {
    mode: String,
    count: u64,
    size: u64,
    spec: DataSpec,
    format: Format,
    rank: u64,
    ranks: u64,
    start_at: Option<f64>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or(USAGE)?;
    if mode != "speed" && mode != "ratios" {
        return Err(format!("unknown mode '{mode}'\n{USAGE}"));
    }
    let mut a = Args {
        mode,
        count: 1,
        size: 64 << 20,
        spec: DataSpec {
            seed: 42,
            dedup: 1,
            compress: 1,
        },
        format: Format::Raw,
        rank: 0,
        ranks: 1,
        start_at: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: s3dlio_store_core::Error| format!("{flag} '{v}': {}", e.message());
        match flag.as_str() {
            "-n" => a.count = parse_count(&v).map_err(bad)?,
            "-s" => a.size = parse_size(&v).map_err(bad)?,
            "-d" => a.spec.dedup = parse_count(&v).map_err(bad)?,
            "-x" => a.spec.compress = parse_count(&v).map_err(bad)?,
            "--rank" => a.rank = parse_count(&v).map_err(bad)?,
            "--ranks" => a.ranks = parse_count(&v).map_err(bad)?.max(1),
            "--start-at" => {
                a.start_at = Some(
                    v.parse()
                        .map_err(|_| format!("--start-at '{v}': not seconds"))?,
                )
            }
            "-o" => {
                a.format = match v.as_str() {
                    "raw" => Format::Raw,
                    "npz" => Format::Npz,
                    "tfrecord" => Format::TfRecord,
                    _ => return Err(format!("-o '{v}': expected raw, npz or tfrecord")),
                }
            }
            _ => return Err(format!("unknown option '{flag}'\n{USAGE}")),
        }
    }
    a.spec.validate()?;
    if a.rank >= a.ranks {
        return Err(format!("--rank {} of --ranks {}", a.rank, a.ranks));
    }
    Ok(a)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn main() -> Result<(), String> {
    let a = parse()?;
    let objects = rank_share(a.count, a.rank, a.ranks).map(|i| {
        ObjectGen::new(
            Payload::new(a.spec, i, a.size),
            a.format,
            DEFAULT_CHUNK_SIZE,
        )
    });
    if a.mode == "speed" {
        if let Some(t) = a.start_at {
            std::thread::sleep(Duration::from_secs_f64((t - unix_now()).max(0.0)));
        }
        let start = unix_now();
        let mut bytes = 0u64;
        for mut g in objects {
            while let Some(chunk) = g.next_chunk() {
                bytes += black_box(chunk).len() as u64;
            }
        }
        println!(
            "{{\"bytes\":{bytes},\"start_unix_s\":{start:.6},\"end_unix_s\":{:.6}}}",
            unix_now()
        );
        return Ok(());
    }
    // Payload blocks are what dedup and compress factors are defined on: raw layout only.
    if a.format != Format::Raw {
        return Err("ratios are measured on raw payloads (-o raw)".into());
    }
    let (mut blocks, mut raw, mut packed) = (0u64, 0u64, 0u64);
    let mut distinct = HashSet::new();
    for mut g in objects {
        while let Some(chunk) = g.next_chunk() {
            for b in chunk.chunks(BLOCK_SIZE) {
                blocks += 1;
                raw += b.len() as u64;
                packed += zstd::bulk::compress(b, 3)
                    .map_err(|e| format!("zstd: {e}"))?
                    .len() as u64;
                // Blocks are compared by content, not by a hash that could collide.
                distinct.insert(chunk.slice_ref(b));
            }
        }
    }
    println!(
        "{{\"blocks\":{blocks},\"distinct\":{},\"raw\":{raw},\"packed\":{packed}}}",
        distinct.len()
    );
    Ok(())
}
