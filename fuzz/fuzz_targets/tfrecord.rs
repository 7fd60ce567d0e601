//! The TFRecord parser and the DALI index reader. The first byte picks the property (and
//! whether data CRCs are checked), the next ones the chunk sizes the parser is fed:
//! 0: the rest as a TFRecord file (never panics, the same answer in any chunking, entries
//! tile the input); 1: the rest as records (length byte, bytes), written and indexed back
//! exactly; 2: a written file with one byte flipped (always caught); 3: the rest as a
//! DALI index (never panics, reads back what it writes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3dlio_fuzz::Input;
use s3dlio_tfrecord_index::fuzzing;

fuzz_target!(|data: &[u8]| {
    let mut i = Input(data);
    let mode = i.byte();
    let cuts = i.cuts();
    match mode % 4 {
        0 => fuzzing::check_arbitrary_bytes(i.rest(), &cuts, mode & 4 != 0),
        1 => fuzzing::check_written_records(&i.records(), &cuts),
        2 => {
            let at = usize::from(u16::from_le_bytes([i.byte(), i.byte()]));
            let flip = i.byte();
            fuzzing::check_damage(&i.records(), at, flip, &cuts);
        }
        _ => fuzzing::check_index_reader(i.rest()),
    }
});
