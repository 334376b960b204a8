//! What a condition takes from outside: a client's EventFilter and SimpleAttributeOperand
//! bytes through the server's decoders (`uaedge::opcua_server::event_filter`), and a state
//! as `<state_dir>/conditions.redb` holds it (`uaedge::conditions::decode_state`), which a
//! damaged disk may garble. Checked: nothing panics; no null BrowsePath survives decoding;
//! a state that decodes encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uaedge::conditions::{decode_state, encode_state};
use uaedge::opcua_server::event_filter::decode_for_fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = decode_for_fuzzing(body, false);
        }
        1 => {
            let _ = decode_for_fuzzing(body, true);
        }
        _ => {
            if let Ok(state) = decode_state(body) {
                let bytes = encode_state(&state).expect("a decoded state encodes");
                let again = decode_state(&bytes).expect("an encoded state decodes");
                assert_eq!(again, state);
            }
        }
    }
});
