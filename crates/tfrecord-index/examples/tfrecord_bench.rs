//! The programs `cargo xtask bench tfrecord` measures (not an example to learn from; see
//! `index_and_fetch.rs` for that):
//!
//! - `tfrecord_bench gen PATH BYTES MIN MAX SEED`: a TFRecord file of about BYTES, record
//!   sizes log-uniform in MIN..=MAX, written with [`TfRecordWriter`].
//! - `tfrecord_bench index PATH OUT [--verify]`: what `s3-cli tfrecord index PATH -o OUT`
//!   does: index the local file, write the DALI index; prints `{"records":N,"bytes":B}`.

use std::io::{BufWriter, Write};

use s3dlio_tfrecord_index::{index_file, write_index, IndexOptions, TfRecordWriter};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 { args[i].parse().expect("a number") };
    match args.first().map(String::as_str) {
        Some("gen") if args.len() == 6 => {
            let (bytes, min, max, seed) = (num(2), num(3) as f64, num(4) as f64, num(5));
            let f = std::fs::File::create(&args[1]).expect("create");
            let mut w = TfRecordWriter::new(BufWriter::with_capacity(8 << 20, f));
            let mut x = seed | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut buf = vec![0u8; max as usize];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes()[7];
            }
            while w.offset() < bytes {
                let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                let n = (min * (max / min).powf(u)) as usize;
                let start = (next() % 64) as usize;
                let n = n.min(buf.len() - start);
                w.write_record(&buf[start..start + n]).expect("write");
            }
            let (records, total) = (w.records(), w.offset());
            w.into_inner().flush().expect("flush");
            println!("{{\"records\":{records},\"bytes\":{total}}}");
        }
        Some("index") if args.len() == 3 || args.len() == 4 => {
            let verify = args.get(3).map(String::as_str) == Some("--verify");
            let opts = IndexOptions {
                verify_data: verify,
                ..IndexOptions::default()
            };
            let entries = index_file(&args[1], opts).unwrap_or_else(|e| {
                eprintln!("tfrecord_bench: {e}");
                std::process::exit(1)
            });
            let out = std::fs::File::create(&args[2]).expect("create the index");
            write_index(&entries, BufWriter::new(out)).expect("write the index");
            let bytes = entries.last().map_or(0, |e| e.end());
            println!("{{\"records\":{},\"bytes\":{bytes}}}", entries.len());
        }
        _ => {
            eprintln!(
                "usage: tfrecord_bench gen PATH BYTES MIN MAX SEED | index PATH OUT [--verify]"
            );
            std::process::exit(2);
        }
    }
}
