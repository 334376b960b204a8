//! A line an `exec` driver program writes (`uaedge_exec::protocol::decode`), and each of
//! its readings taken as every model type (`RawReading::to_reading`). Checked: nothing
//! panics; a reading that converts keeps its tag index, and a Good one's value has the
//! type asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uaedge_driver::DataType;
use uaedge_exec::protocol::{decode, Message};

fuzz_target!(|data: &[u8]| {
    let readings = match decode(data) {
        Ok(Message::Readings { readings, .. } | Message::Data { readings }) => readings,
        _ => return,
    };
    for raw in &readings {
        for to in DataType::ALL {
            if let Ok(r) = raw.to_reading(to) {
                assert_eq!(r.tag, raw.tag);
                if let Some(v) = &r.value {
                    assert_eq!(v.data_type(), to);
                }
            }
        }
    }
});
