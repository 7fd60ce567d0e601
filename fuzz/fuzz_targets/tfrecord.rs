//! The TFRecord parser and the DALI index reader. The first byte picks the property (its
//! low 3 bits, modulo 5) and whether data CRCs are checked (its high bit); the next ones
//! the chunk sizes the parser is fed. 0: the rest as a TFRecord file (never panics, the
//! same answer in any chunking, entries tile the input); 1: the rest as records (length
//! byte, bytes), written and indexed back exactly; 2: a written file with one byte flipped
//! (always caught); 3: the rest as a DALI index (never panics, reads back what it writes);
//! 4: records framed with valid header CRCs around lengths from the input (as 0).
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3dlio_fuzz::Input;
use s3dlio_tfrecord_index::fuzzing;

fuzz_target!(|data: &[u8]| {
    let mut i = Input(data);
    let flags = i.byte();
    let verify = flags & 0x80 != 0;
    let cuts = i.cuts();
    match (flags & 7) % 5 {
        0 => fuzzing::check_arbitrary_bytes(i.rest(), &cuts, verify),
        1 => fuzzing::check_written_records(&i.records(), &cuts),
        2 => {
            let at = usize::from(u16::from_le_bytes([i.byte(), i.byte()]));
            let flip = i.byte();
            fuzzing::check_damage(&i.records(), at, flip, &cuts);
        }
        3 => fuzzing::check_index_reader(i.rest()),
        _ => fuzzing::check_framed(&i.framed(), &cuts, verify),
    }
});
