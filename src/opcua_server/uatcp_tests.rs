use opcua::types::{DateTime, ResponseHeader, StatusCode};

use super::*;

fn chunk(kind: &[u8; 3], chunk: u8, body: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.push(chunk);
    c.extend_from_slice(&((HEADER + body.len()) as u32).to_le_bytes());
    c.extend_from_slice(body);
    c
}

fn hello_message(url: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [0u32, 65535, 65535, 0, 0] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&(url.len() as i32).to_le_bytes());
    body.extend_from_slice(url.as_bytes());
    chunk(b"HEL", b'F', &body)
}

/// A symmetric MSG chunk as a None channel carries it: channel id, token id, sequence
/// number, request id, then the encoded message.
fn msg(chunk_type: u8, type_id: [u8; 4], message: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [7u32, 1, 42, 3] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&type_id);
    body.extend_from_slice(message);
    chunk(b"MSG", chunk_type, &body)
}

fn activate_response(nonce: ByteString) -> Vec<u8> {
    let context = ContextOwned::default();
    let response = ActivateSessionResponse {
        response_header: ResponseHeader {
            timestamp: DateTime::now(),
            request_handle: 9,
            service_result: StatusCode::Good,
            ..Default::default()
        },
        server_nonce: nonce,
        results: Some(vec![StatusCode::Good]),
        diagnostic_infos: None,
    };
    msg(
        b'F',
        ACTIVATE_SESSION_RESPONSE,
        &response.encode_to_vec(&context.context()),
    )
}

fn decode_activate(chunk: &[u8]) -> ActivateSessionResponse {
    let context = ContextOwned::default();
    let mut body = &chunk[MSG_BODY + 4..];
    let r = ActivateSessionResponse::decode(&mut body, &context.context()).expect("decodes");
    assert!(body.is_empty());
    r
}

/// Feeds `input` in pieces of `step` bytes.
fn scan(input: &[u8], unsecured: bool, step: usize) -> (Vec<u8>, Vec<Event>) {
    let mut s = ServerScanner::new(1 << 20);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    for piece in input.chunks(step) {
        s.feed(piece, unsecured, &mut out, &mut events)
            .expect("valid stream");
    }
    (out, events)
}

#[test]
fn hello_is_checked_before_anything_reaches_the_server() {
    let good = hello_message("opc.tcp://127.0.0.1:4840/");
    assert_eq!(hello(&good), Ok(()));
    assert!(matches!(
        hello_header(b"GET / HT"),
        Err(FrameError::MessageType(_))
    ));
    assert!(matches!(
        hello_header(&chunk(b"OPN", b'F', &[0; 40])),
        Err(FrameError::NotHello(Kind::Open))
    ));
    assert!(matches!(
        hello_header(&chunk(b"HEL", b'C', &[0; 40])),
        Err(FrameError::ChunkType(b'C'))
    ));
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&100_000u32.to_le_bytes());
    assert_eq!(hello_header(&huge), Err(FrameError::Size(100_000)));
    let mut overrun = good.clone();
    let url_at = HEADER + 20;
    overrun[url_at..url_at + 4].copy_from_slice(&500i32.to_le_bytes());
    assert!(matches!(hello(&overrun), Err(FrameError::Hello(_))));
    let mut small = good;
    small[HEADER + 4..HEADER + 8].copy_from_slice(&100u32.to_le_bytes());
    assert!(matches!(hello(&small), Err(FrameError::Hello(_))));
}

#[test]
fn the_first_open_names_its_policy() {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.extend_from_slice(&(NONE_POLICY.len() as i32).to_le_bytes());
    body.extend_from_slice(NONE_POLICY);
    body.extend_from_slice(&[0xff; 8]);
    let open = chunk(b"OPN", b'F', &body);
    let n = open_policy_len(&open[..OPEN_PREFIX], 1 << 20).expect("an open");
    assert_eq!(&open[OPEN_PREFIX..OPEN_PREFIX + n], NONE_POLICY);
    let msg = chunk(b"MSG", b'F', &body);
    assert_eq!(
        open_policy_len(&msg[..OPEN_PREFIX], 1 << 20),
        Err(FrameError::NotOpen(Kind::Message))
    );
    let mut long = open.clone();
    long[HEADER + 4..OPEN_PREFIX].copy_from_slice(&5000i32.to_le_bytes());
    assert!(open_policy_len(&long[..OPEN_PREFIX], 1 << 20).is_err());
}

#[test]
fn a_null_nonce_gets_32_random_bytes_and_nothing_else_changes() {
    let original = activate_response(ByteString::null());
    let (out, events) = scan(&original, true, 5);
    assert_eq!(events, vec![Event::NonceReplaced]);
    let fixed = decode_activate(&out);
    assert_eq!(fixed.server_nonce.as_ref().len(), NONCE_LEN);
    let before = decode_activate(&original);
    assert_eq!(
        fixed.response_header.request_handle,
        before.response_header.request_handle
    );
    assert_eq!(fixed.results, before.results);
    // Everything before the message is as it was; the size follows the longer body.
    assert_eq!(out[..4], original[..4]);
    assert_eq!(out[HEADER..MSG_BODY + 4], original[HEADER..MSG_BODY + 4]);
    assert_eq!(
        u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
        out.len()
    );
    // Two responses never get the same nonce.
    let (again, _) = scan(&original, true, 1000);
    assert_ne!(decode_activate(&again).server_nonce, fixed.server_nonce);
}

#[test]
fn secured_channels_and_other_messages_pass_untouched() {
    let activate = activate_response(ByteString::null());
    // Over a secured channel the bytes are not ours to read.
    assert_eq!(scan(&activate, false, 3), (activate.clone(), vec![]));
    // A nonce that is long enough stays.
    let good = activate_response(ByteString::from(vec![1u8; 32]));
    assert_eq!(scan(&good, true, 7), (good.clone(), vec![]));
    // A later chunk of a message that only looks like one is not a message start.
    let mut stream = msg(b'C', [1, 0, 0x10, 0x01], &[0; 100]);
    stream.extend_from_slice(&activate);
    assert_eq!(scan(&stream, true, 11).0, stream);
    // Large chunks pass through in pieces, without being held.
    let big = msg(b'F', [1, 0, 0x3A, 0x03], &vec![0x55; 300_000]);
    let mut s = ServerScanner::new(1 << 20);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    s.feed(&big[..1000], true, &mut out, &mut events)
        .expect("feed");
    assert_eq!(out.len(), 1000, "a large chunk is passed on as it comes");
}

#[test]
fn open_and_error_are_reported() {
    let mut stream = chunk(b"ACK", b'F', &[0; 20]);
    stream.extend(chunk(b"OPN", b'F', &[0; 60]));
    stream.extend(chunk(b"OPN", b'F', &[0; 60]));
    let mut err = 0x8001_0000u32.to_le_bytes().to_vec();
    err.extend_from_slice(&(-1i32).to_le_bytes());
    stream.extend(chunk(b"ERR", b'F', &err));
    let (out, events) = scan(&stream, true, 3);
    assert_eq!(out, stream);
    assert_eq!(events, vec![Event::Opened, Event::Refused(0x8001_0000)]);
}

#[test]
fn garbage_from_the_server_side_is_an_error_not_a_panic() {
    let mut s = ServerScanner::new(1 << 20);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    assert!(s
        .feed(b"HTTP/1.1 200 OK\r\n", true, &mut out, &mut events)
        .is_err());
    let mut s = ServerScanner::new(1 << 20);
    assert_eq!(
        s.feed(
            &chunk(b"MSG", b'F', &[])[..4]
                .iter()
                .chain(&[1, 0, 0, 0])
                .copied()
                .collect::<Vec<_>>(),
            true,
            &mut out,
            &mut events
        ),
        Err(FrameError::Size(1))
    );
}

#[test]
fn bytes_held_back_are_handed_over_when_the_scanner_stops() {
    let mut s = ServerScanner::new(1 << 20);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    let mut err = 0x8001_0000u32.to_le_bytes().to_vec();
    err.extend_from_slice(&(-1i32).to_le_bytes());
    let err = chunk(b"ERR", b'F', &err);
    s.feed(&err[..5], true, &mut out, &mut events)
        .expect("feed");
    assert!(out.is_empty(), "part of a header waits");
    assert_eq!(s.take_held(), err[..5]);
    s.feed(&err[..12], true, &mut out, &mut events)
        .expect("feed");
    assert!(out.is_empty(), "an Error message is held whole");
    assert_eq!(s.take_held(), err[..12]);
}
