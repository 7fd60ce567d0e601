//! Damaged and foreign input: each a clear error naming the bad record's offset, the same
//! through every way in (chunked parser, local file with seeking, byte stream), never a
//! panic, a hang or an allocation sized by a garbage length.

use std::io::Write as _;

use bytes::Bytes;
use s3dlio_store_core::{MemoryStore, ObjectStoreExt};
use s3dlio_tfrecord_index::{
    append_record, encode_header, index_file, index_object, FormatError, FormatErrorKind,
    IndexEntry, IndexOptions, Indexer, RecordReader,
};

/// Record sizes: small ones, an empty one, and a large one (seeked over when indexing a
/// local file without verification).
const SIZES: &[usize] = &[10, 300, 0, 5000, 400_000, 7];

fn valid() -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for (n, &s) in SIZES.iter().enumerate() {
        offsets.push(out.len() as u64);
        let data: Vec<u8> = (0..s).map(|i| (i * 13 + n * 7) as u8).collect();
        append_record(&mut out, &data);
    }
    (out, offsets)
}

const NO_VERIFY: IndexOptions = IndexOptions {
    verify_data: false,
    allow_empty: true,
};
const VERIFY: IndexOptions = IndexOptions {
    verify_data: true,
    allow_empty: false,
};

/// The outcome through every path; they must all agree.
fn outcome(data: &[u8], opts: IndexOptions) -> Result<Vec<IndexEntry>, FormatError> {
    let mut results = Vec::new();
    for step in [1, 5, 4096, data.len().max(1)] {
        let mut ix = Indexer::with_options(opts);
        let r = data
            .chunks(step)
            .try_for_each(|c| ix.feed(c))
            .and_then(|()| ix.finish());
        results.push(r);
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    results.push(index_file(f.path(), opts).map_err(|e| e.format().cloned().expect("format")));
    let store = MemoryStore::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    results.push(rt.block_on(async {
        store
            .put_bytes("f.tfrecord", Bytes::copy_from_slice(data))
            .await
            .unwrap();
        index_object(&store, "f.tfrecord", opts)
            .await
            .map_err(|e| e.format().cloned().expect("format"))
    }));
    let first = results[0].clone();
    for r in &results {
        // Details may name the file; kind, offset and record must match.
        match (r, &first) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(
                (a.kind, a.offset, a.record),
                (b.kind, b.offset, b.record),
                "{a} / {b}"
            ),
            _ => panic!("paths disagree: {r:?} / {first:?}"),
        }
    }
    first
}

fn err(data: &[u8], opts: IndexOptions) -> FormatError {
    outcome(data, opts).expect_err("an error")
}

fn assert_err(e: &FormatError, kind: FormatErrorKind, offset: u64, record: u64) {
    assert_eq!((e.kind, e.offset, e.record), (kind, offset, record), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("at offset {offset}")), "{msg}");
}

#[test]
fn valid_file_indexes_the_same_everywhere() {
    let (f, offsets) = valid();
    let e = outcome(&f, VERIFY).unwrap();
    assert_eq!(e.iter().map(|e| e.offset).collect::<Vec<_>>(), offsets);
    assert_eq!(outcome(&f, NO_VERIFY).unwrap(), e);
}

#[test]
fn flipped_bit_in_data() {
    let (mut f, o) = valid();
    f[o[3] as usize + 12 + 100] ^= 0x10;
    let e = err(&f, VERIFY);
    assert_err(&e, FormatErrorKind::DataCrc, o[3], 3);
    assert!(e.to_string().contains("bad data CRC"), "{e}");
    // Without verification the data is not read: the index is still right.
    assert_eq!(outcome(&f, NO_VERIFY).unwrap().len(), SIZES.len());
    // In the large record too (seeked over without verification).
    let (mut f, o) = valid();
    f[o[4] as usize + 12 + 300_000] ^= 1;
    assert_err(&err(&f, VERIFY), FormatErrorKind::DataCrc, o[4], 4);
}

#[test]
fn flipped_bit_in_length() {
    for bit in [0, 7, 13, 40, 63] {
        let (mut f, o) = valid();
        f[o[1] as usize + bit / 8] ^= 1 << (bit % 8);
        for opts in [VERIFY, NO_VERIFY] {
            let e = err(&f, opts);
            assert_err(&e, FormatErrorKind::LengthCrc, o[1], 1);
            assert!(e.to_string().contains("bad length CRC"), "{e}");
        }
    }
}

#[test]
fn flipped_bit_in_length_crc() {
    let (mut f, o) = valid();
    f[o[2] as usize + 9] ^= 0x80;
    for opts in [VERIFY, NO_VERIFY] {
        assert_err(&err(&f, opts), FormatErrorKind::LengthCrc, o[2], 2);
    }
}

#[test]
fn flipped_bit_in_data_crc() {
    let (mut f, o) = valid();
    let crc_at = (o[3] + 12 + SIZES[3] as u64) as usize;
    f[crc_at + 2] ^= 4;
    assert_err(&err(&f, VERIFY), FormatErrorKind::DataCrc, o[3], 3);
    assert!(outcome(&f, NO_VERIFY).is_ok());
    // The empty record's data CRC.
    let (mut f, o) = valid();
    f[o[2] as usize + 12] ^= 1;
    assert_err(&err(&f, VERIFY), FormatErrorKind::DataCrc, o[2], 2);
}

#[test]
fn truncated_in_header_body_and_trailing_crc() {
    let (f, o) = valid();
    let last = *o.last().unwrap();
    let n = SIZES.len() as u64 - 1;
    for (cut, what) in [
        (last + 1, "header"),
        (last + 11, "header"),
        (last + 12, "data"),
        (last + 15, "data"),
        (last + 12 + 7, "CRC"),
        (last + 12 + 7 + 3, "CRC"),
    ] {
        for opts in [VERIFY, NO_VERIFY] {
            let e = err(&f[..cut as usize], opts);
            assert_err(&e, FormatErrorKind::Truncated, last, n);
            assert!(e.to_string().contains(what), "{what}: {e}");
        }
    }
    // Cut inside the large record, which indexing without verification seeks over.
    for cut in [o[4] + 12 + 1000, o[4] + 12 + 400_000 + 2] {
        for opts in [VERIFY, NO_VERIFY] {
            assert_err(
                &err(&f[..cut as usize], opts),
                FormatErrorKind::Truncated,
                o[4],
                4,
            );
        }
    }
}

#[test]
fn garbage_input_fails_at_offset_zero() {
    let text = b"This is a plain text file, not TFRecord at all.\n".repeat(100);
    for opts in [VERIFY, NO_VERIFY] {
        assert_err(&err(&text, opts), FormatErrorKind::LengthCrc, 0, 0);
        // Garbage appended after valid records fails at its own offset.
        let (mut f, _) = valid();
        let at = f.len() as u64;
        f.extend_from_slice(&text);
        assert_err(
            &err(&f, opts),
            FormatErrorKind::LengthCrc,
            at,
            SIZES.len() as u64,
        );
    }
    // Bytes shorter than a header are a truncated record.
    assert_err(&err(b"abc", NO_VERIFY), FormatErrorKind::Truncated, 0, 0);
}

#[test]
fn huge_lengths_with_valid_crcs_are_not_allocated() {
    // A header whose CRC is right but whose length is absurd: reported, nothing allocated
    // (the parser never buffers data, so the test finishing at all shows it).
    let mut f = encode_header(1 << 60).to_vec();
    f.extend_from_slice(&[0u8; 100]);
    for opts in [VERIFY, NO_VERIFY] {
        let e = err(&f, opts);
        assert_err(&e, FormatErrorKind::Truncated, 0, 0);
    }
    let f = encode_header(u64::MAX - 3).to_vec();
    assert_err(&err(&f, NO_VERIFY), FormatErrorKind::Invalid, 0, 0);
}

#[test]
fn empty_file_is_an_empty_index_but_not_a_valid_file() {
    // As `tfrecord2idx`: an empty file has an empty index.
    assert_eq!(outcome(&[], NO_VERIFY).unwrap(), vec![]);
    // Validation (`s3-cli tfrecord verify`) calls it out.
    let e = err(&[], VERIFY);
    assert_err(&e, FormatErrorKind::Empty, 0, 0);
    assert!(e.to_string().contains("empty file"), "{e}");
}

#[test]
fn random_damage_never_panics_or_hangs() {
    let (f, _) = valid();
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut g = f.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() % g.len() as u64) as usize;
            g[i] ^= 1 << (next() % 8);
        }
        g.truncate((next() % (g.len() as u64 + 1)) as usize);
        for opts in [VERIFY, NO_VERIFY] {
            let mut ix = Indexer::with_options(opts);
            let _ = ix.feed(&g).and_then(|()| ix.finish());
        }
    }
    // Pure noise.
    let noise: Vec<u8> = (0..100_000).map(|_| next() as u8).collect();
    assert_eq!(err(&noise, NO_VERIFY).kind, FormatErrorKind::LengthCrc);
}

#[tokio::test]
async fn fetched_records_are_checked_against_their_crcs_and_the_index() {
    let (mut f, o) = valid();
    let mut ix = Indexer::new(true);
    ix.feed(&f).unwrap();
    let good = ix.finish().unwrap();
    f[o[1] as usize + 12 + 5] ^= 2;
    let store = std::sync::Arc::new(MemoryStore::new());
    store.put_bytes("d.tfrecord", Bytes::from(f)).await.unwrap();
    let r = RecordReader::new(store.clone(), "d.tfrecord", good.clone());
    assert_eq!(r.record(0).await.unwrap().len(), 10);
    let e = r.records(&[0, 1, 2]).await.unwrap_err();
    let fe = e.format().expect("a format error");
    assert_eq!(
        (fe.kind, fe.offset, fe.record),
        (FormatErrorKind::DataCrc, o[1], 1)
    );
    // CRC checks off: the damaged data comes back.
    let r2 = r.clone().with_options(s3dlio_tfrecord_index::FetchOptions {
        verify: false,
        ..Default::default()
    });
    assert_eq!(r2.record(1).await.unwrap().len(), 300);
    // An index that does not belong to the object.
    let wrong = vec![IndexEntry::new(0, 30)];
    let r3 = RecordReader::new(store.clone(), "d.tfrecord", wrong);
    let e = r3.record(0).await.unwrap_err().to_string();
    assert!(e.contains("index"), "{e}");
    // Past the end of the object.
    let beyond = vec![IndexEntry::new(o[5], 1000)];
    let e = RecordReader::new(store, "d.tfrecord", beyond)
        .record(0)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated") || e.contains("range"), "{e}");
    assert!(r
        .record(99)
        .await
        .unwrap_err()
        .to_string()
        .contains("record 99"));
}
