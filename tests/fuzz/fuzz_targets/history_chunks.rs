//! What the historian reads back from its file, which a damaged disk may garble: a chunk
//! (`uaedge::history::chunk::decode`, and `ChunkEncoder::resume`, which a restart uses on an
//! open chunk), an intake log record (`uaedge::history::wal::RecordReader`) and a stored
//! condition event (`uaedge::conditions::EventRecord::decode`). Checked: nothing panics; a
//! chunk that decodes re-encodes to samples that decode to themselves; an event record that
//! decodes encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uaedge::conditions::EventRecord;
use uaedge::history::chunk::{decode, ChunkEncoder};
use uaedge::history::wal::RecordReader;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    if mode % 3 == 2 {
        if let Ok(record) = EventRecord::decode(body) {
            let again = EventRecord::decode(&record.encode()).expect("an encoded record decodes");
            assert_eq!(again, record);
            let _ = record.event();
        }
        return;
    }
    if mode % 3 == 0 {
        for sample in RecordReader::new(body) {
            if sample.is_err() {
                break;
            }
        }
        return;
    }
    let Ok(points) = decode(body) else {
        return;
    };
    let enc = ChunkEncoder::resume(body).expect("a chunk that decodes resumes");
    let again = decode(&enc.to_bytes()).expect("a re-encoded chunk decodes");
    assert_eq!(again.len(), points.len());
    for (a, b) in again.iter().zip(&points) {
        assert_eq!((a.time, a.quality), (b.time, b.quality));
        // NaN payloads compare unequal with `==`; their bits must survive.
        assert_eq!(format!("{:?}", a.value), format!("{:?}", b.value));
    }
});
