//! The invariants of the TFRecord parser and the DALI index reader, shared by the proptest
//! properties (`tests/fuzz.rs`) and the cargo-fuzz target (`fuzz/`): each check panics,
//! naming the input, when its property does not hold. Only with the `fuzzing` feature.

use crate::{
    encode_header, masked_crc32c, read_index, write_index, FormatError, IndexEntry, Indexer,
    TfRecordWriter,
};

/// Index `data` fed in chunks whose sizes cycle through `cuts` (a size of 0 counts as 1;
/// no cuts: one chunk), then finish.
pub fn index_in_chunks(
    data: &[u8],
    cuts: &[usize],
    verify: bool,
) -> Result<Vec<IndexEntry>, FormatError> {
    let mut ix = Indexer::new(verify);
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let want = cuts
            .get(i % cuts.len().max(1))
            .copied()
            .unwrap_or(data.len());
        let n = want.clamp(1, data.len() - at);
        ix.feed(&data[at..at + n])?;
        at += n;
        i += 1;
    }
    ix.finish()
}

/// Any bytes in any chunking: the parser never panics; the answer does not depend on the
/// chunking (the same entries, or the same error at the same offset); entries tile the
/// input from byte 0 to its end, each at least the 16 framing bytes; and with data CRCs
/// checked, whatever indexes also indexes without the check.
pub fn check_arbitrary_bytes(data: &[u8], cuts: &[usize], verify: bool) {
    let chunked = index_in_chunks(data, cuts, verify);
    let whole = index_in_chunks(data, &[], verify);
    assert_eq!(
        chunked, whole,
        "chunks {cuts:?} (verify {verify}) of {data:?}"
    );
    let Ok(entries) = whole else { return };
    let mut at = 0;
    for e in &entries {
        assert!(
            e.offset == at && e.size >= 16,
            "{e:?} after byte {at}: {entries:?}"
        );
        at = e.end();
    }
    assert_eq!(
        at,
        data.len() as u64,
        "entries {entries:?} leave bytes over"
    );
    if verify {
        assert_eq!(index_in_chunks(data, cuts, false).ok(), Some(entries));
    }
}

/// Records framed with the lengths given, whatever the length of their data: a header with
/// a valid CRC around any length (which random bytes almost never carry), the data, and
/// its valid CRC; then the checks of [`check_arbitrary_bytes`]. This reaches the length
/// logic (records running past a chunk or the input, lengths near `u64::MAX`).
pub fn check_framed(parts: &[(u64, Vec<u8>)], cuts: &[usize], verify: bool) {
    let mut file = Vec::new();
    for (len, data) in parts {
        file.extend_from_slice(&encode_header(*len));
        file.extend_from_slice(data);
        file.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    }
    check_arbitrary_bytes(&file, cuts, verify);
}

/// `records` written with [`TfRecordWriter`] index to exactly the entries it returned, in
/// any chunking, with data CRCs checked.
pub fn check_written_records(records: &[Vec<u8>], cuts: &[usize]) {
    let (file, entries) = write(records);
    match index_in_chunks(&file, cuts, true) {
        Ok(got) => assert_eq!(got, entries, "chunks {cuts:?}"),
        Err(e) => panic!("written records fail to index in chunks {cuts:?}: {e}"),
    }
}

/// Flipping any byte of a non-empty written file with `flip` (not 0) is an error with
/// data CRCs checked, never other records; cutting it at that byte is an error too unless
/// the cut falls between records.
pub fn check_damage(records: &[Vec<u8>], at: usize, flip: u8, cuts: &[usize]) {
    if records.is_empty() || flip == 0 {
        return;
    }
    let (mut file, entries) = write(records);
    let i = at % file.len();
    file[i] ^= flip;
    let r = index_in_chunks(&file, cuts, true);
    assert!(
        r.is_err(),
        "byte {i} flipped yet indexed: {r:?} (was {entries:?})"
    );
    let r = index_in_chunks(&file[..i], cuts, false);
    if i > 0 && !entries.iter().any(|e| e.end() == i as u64) {
        assert!(r.is_err(), "cut at {i} yet indexed: {r:?}");
    }
}

/// Any bytes as a DALI index: the reader never panics, and an index it reads writes back
/// as an index that reads the same.
pub fn check_index_reader(text: &[u8]) {
    let Ok(entries) = read_index(text) else {
        return;
    };
    let mut out = Vec::new();
    write_index(&entries, &mut out).expect("writing to a Vec");
    match read_index(&out[..]) {
        Ok(again) => assert_eq!(again, entries, "{:?}", String::from_utf8_lossy(&out)),
        Err(e) => panic!("{entries:?} written as an index does not read back: {e}"),
    }
}

/// `records` framed as a TFRecord file, and the entries the writer returned.
pub fn write(records: &[Vec<u8>]) -> (Vec<u8>, Vec<IndexEntry>) {
    let mut w = TfRecordWriter::new(Vec::new());
    let entries = records
        .iter()
        .map(|r| w.write_record(r).expect("writing to a Vec"))
        .collect();
    w.flush().expect("writing to a Vec");
    (w.into_inner(), entries)
}
