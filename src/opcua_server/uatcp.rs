//! OPC UA TCP framing (Part 6, 7.1), as much of it as the gate needs: the 8-byte header of
//! every chunk, the Hello a connection must open with, the security policy of its first
//! OpenSecureChannel, the status of an Error message, and the ActivateSession response of
//! an unsecured channel. Pure functions over bytes, so that they can be tested and fuzzed
//! without sockets (tests/fuzz/fuzz_targets/opcua_frames.rs).

use opcua::types::{
    ActivateSessionResponse, BinaryDecodable, BinaryEncodable, ByteString, ContextOwned,
    TypeLoaderCollection,
};
use uaedge_opcua_client::hardening::harden;

/// Every chunk starts with message type (3 bytes), chunk type (1) and size (u32 LE).
pub const HEADER: usize = 8;
/// The security policy that neither signs nor encrypts.
pub const NONE_POLICY: &[u8] = b"http://opcfoundation.org/UA/SecurityPolicy#None";
/// Part 4 (5.6.2): a server nonce has at least 32 bytes.
pub const NONCE_LEN: usize = 32;
/// A Hello with the longest endpoint URL Part 6 allows (4096 bytes).
const MAX_HELLO: usize = HEADER + 20 + 4 + 4096;
/// The smallest buffer Part 6 lets a peer announce.
const MIN_BUFFER: u32 = 8192;
/// A policy URI longer than this is not one.
const MAX_POLICY_URI: usize = 256;
/// The largest chunk the gate holds to look into: an ActivateSession response or an Error
/// message is far smaller.
const MAX_HELD: usize = 4096;
/// Header and sequence header of a symmetric MSG chunk: the body starts here.
const MSG_BODY: usize = HEADER + 4 + 4 + 4 + 4;
/// NodeId `i=470` (ActivateSessionResponse_Encoding_DefaultBinary) in its four-byte form.
const ACTIVATE_SESSION_RESPONSE: [u8; 4] = [0x01, 0x00, 0xD6, 0x01];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not OPC UA: message type `{}`", .0.escape_ascii())]
    MessageType([u8; 3]),
    #[error("not OPC UA: chunk type {0:#04x}")]
    ChunkType(u8),
    #[error("chunk size {0} out of bounds")]
    Size(usize),
    #[error("the first message is {0:?}, not Hello")]
    NotHello(Kind),
    #[error("malformed Hello: {0}")]
    Hello(&'static str),
    #[error("the first message after Hello is {0:?}, not OpenSecureChannel")]
    NotOpen(Kind),
    #[error("malformed OpenSecureChannel: {0}")]
    Open(&'static str),
}

/// The message types of Part 6, 7.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hello,
    Acknowledge,
    Error,
    ReverseHello,
    Open,
    Message,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub chunk: u8,
    /// The whole chunk, header included.
    pub size: usize,
}

/// Reads a chunk header; `max` bounds the size (a peer announcing gigabytes is not one).
pub fn header(bytes: &[u8], max: usize) -> Result<Header, FrameError> {
    let Some(b) = bytes.get(..HEADER) else {
        return Err(FrameError::Size(bytes.len()));
    };
    let kind = match &b[..3] {
        b"HEL" => Kind::Hello,
        b"ACK" => Kind::Acknowledge,
        b"ERR" => Kind::Error,
        b"RHE" => Kind::ReverseHello,
        b"OPN" => Kind::Open,
        b"MSG" => Kind::Message,
        b"CLO" => Kind::Close,
        other => return Err(FrameError::MessageType([other[0], other[1], other[2]])),
    };
    let chunk = b[3];
    // Only MSG may be sent in several chunks (C) or aborted (A).
    let chunk_ok = chunk == b'F' || (kind == Kind::Message && (chunk == b'C' || chunk == b'A'));
    if !chunk_ok {
        return Err(FrameError::ChunkType(chunk));
    }
    let size = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if !(HEADER..=max).contains(&size) {
        return Err(FrameError::Size(size));
    }
    Ok(Header { kind, chunk, size })
}

/// The header of a connection's first message, which must be a Hello of plausible size.
pub fn hello_header(bytes: &[u8]) -> Result<Header, FrameError> {
    let h = header(bytes, MAX_HELLO)?;
    if h.kind != Kind::Hello {
        return Err(FrameError::NotHello(h.kind));
    }
    Ok(h)
}

/// Checks a whole Hello: buffer sizes Part 6 allows and an endpoint URL that fits.
pub fn hello(message: &[u8]) -> Result<(), FrameError> {
    let h = hello_header(message)?;
    if message.len() != h.size || h.size < HEADER + 24 {
        return Err(FrameError::Hello("too short"));
    }
    let word = |at: usize| {
        [
            message[at],
            message[at + 1],
            message[at + 2],
            message[at + 3],
        ]
    };
    let (receive, send) = (
        u32::from_le_bytes(word(HEADER + 4)),
        u32::from_le_bytes(word(HEADER + 8)),
    );
    if receive < MIN_BUFFER || send < MIN_BUFFER {
        return Err(FrameError::Hello("buffer below 8192 bytes"));
    }
    // A null URL (-1) is as wrong as one that overruns the message.
    let url_len = usize::try_from(i32::from_le_bytes(word(HEADER + 20)))
        .map_err(|_| FrameError::Hello("no endpoint URL"))?;
    if HEADER + 24 + url_len != h.size {
        return Err(FrameError::Hello("endpoint URL does not fit the message"));
    }
    Ok(())
}

/// How many bytes of an OpenSecureChannel chunk `open_is_unsecured` needs before it can
/// answer: the header, the channel id and the policy URI's length.
pub const OPEN_PREFIX: usize = HEADER + 4 + 4;

/// The length of the policy URI, from the first `OPEN_PREFIX` bytes of the first chunk after
/// the Hello, which must be an OpenSecureChannel request.
pub fn open_policy_len(prefix: &[u8], max_chunk: usize) -> Result<usize, FrameError> {
    let h = header(prefix, max_chunk)?;
    if h.kind != Kind::Open {
        return Err(FrameError::NotOpen(h.kind));
    }
    let Some(len) = prefix.get(HEADER + 4..OPEN_PREFIX) else {
        return Err(FrameError::Open("too short"));
    };
    let len = i32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    match usize::try_from(len) {
        Ok(n) if n <= MAX_POLICY_URI && OPEN_PREFIX + n <= h.size => Ok(n),
        _ => Err(FrameError::Open("no security policy URI")),
    }
}

/// What the server said about the connection, found while passing its bytes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The first OpenSecureChannel response: the handshake is through.
    Opened,
    /// An Error message with its StatusCode.
    Refused(u32),
    /// A null or short server nonce in an ActivateSession response was replaced.
    NonceReplaced,
}

enum State {
    /// Collecting the next header.
    Header,
    /// Holding a whole chunk to look into before it goes on.
    Holding(Header),
    /// Passing on this many more bytes of the current chunk.
    Passing(usize),
}

/// Follows the server-to-client byte stream chunk by chunk without delaying it: bytes go
/// out as they come, except the few small chunks held whole to be read (Error messages,
/// and on unsecured channels the first chunk of each message, for the ActivateSession
/// response whose missing nonce is put in).
pub struct ServerScanner {
    state: State,
    held: Vec<u8>,
    max_chunk: usize,
    /// The next MSG chunk starts a message: the one before was final or aborted.
    message_start: bool,
    opened: bool,
}

impl ServerScanner {
    pub fn new(max_chunk: usize) -> ServerScanner {
        ServerScanner {
            state: State::Header,
            held: Vec::with_capacity(HEADER),
            max_chunk,
            message_start: true,
            opened: false,
        }
    }

    /// Bytes taken in but not passed on yet (part of a header, or of a chunk held to be
    /// read), for whoever carries the stream on without the scanner.
    pub fn take_held(&mut self) -> Vec<u8> {
        self.state = State::Header;
        std::mem::take(&mut self.held)
    }

    /// Takes the next bytes from the server and appends to `out` what the client gets.
    /// `unsecured`: the channel runs SecurityPolicy None, so its messages can be read.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        unsecured: bool,
        out: &mut Vec<u8>,
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        while !input.is_empty() {
            match self.state {
                State::Passing(n) => {
                    let take = n.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = match n - take {
                        0 => State::Header,
                        rest => State::Passing(rest),
                    };
                }
                State::Header => {
                    let take = (HEADER - self.held.len()).min(input.len());
                    self.held.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.held.len() < HEADER {
                        break;
                    }
                    let h = header(&self.held, self.max_chunk)?;
                    if h.kind == Kind::Open && !self.opened {
                        self.opened = true;
                        events.push(Event::Opened);
                    }
                    let readable = h.kind == Kind::Message
                        && unsecured
                        && self.message_start
                        && h.chunk == b'F';
                    if h.kind == Kind::Message {
                        self.message_start = h.chunk != b'C';
                    }
                    if (h.kind == Kind::Error || readable) && h.size <= MAX_HELD {
                        self.state = State::Holding(h);
                    } else {
                        out.append(&mut self.held);
                        self.state = match h.size - HEADER {
                            0 => State::Header,
                            rest => State::Passing(rest),
                        };
                    }
                }
                State::Holding(h) => {
                    let take = (h.size - self.held.len()).min(input.len());
                    self.held.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.held.len() < h.size {
                        break;
                    }
                    if h.kind == Kind::Error {
                        if let Some(code) = self.held.get(HEADER..HEADER + 4) {
                            events.push(Event::Refused(u32::from_le_bytes([
                                code[0], code[1], code[2], code[3],
                            ])));
                        }
                    } else if let Some(fixed) = with_server_nonce(&self.held) {
                        self.held = fixed;
                        events.push(Event::NonceReplaced);
                    }
                    out.append(&mut self.held);
                    self.state = State::Header;
                }
            }
        }
        Ok(())
    }
}

/// An unsecured ActivateSession response chunk with a fresh 32-byte server nonce in place
/// of a null or shorter one; `None` for any other chunk (left as it is).
///
/// async-opcua 0.19 answers ActivateSession over SecurityPolicy None with a null nonce.
/// Part 4 asks for at least 32 bytes whatever the policy, and open62541 and the UA .NET
/// stack refuse the session without them. Over None the nonce signs nothing: an anonymous
/// token (the only one uaedge's None endpoint takes) does not use it, so the server keeping
/// its own null nonce for the session changes nothing it checks.
pub fn with_server_nonce(chunk: &[u8]) -> Option<Vec<u8>> {
    if chunk.len() < MSG_BODY + 4
        || &chunk[..4] != b"MSGF"
        || chunk[MSG_BODY..MSG_BODY + 4] != ACTIVATE_SESSION_RESPONSE
    {
        return None;
    }
    let loaders = harden(&TypeLoaderCollection::new());
    let context = ContextOwned::new(Default::default(), loaders, Default::default());
    let ctx = context.context();
    let mut body = &chunk[MSG_BODY + 4..];
    let mut response = ActivateSessionResponse::decode(&mut body, &ctx).ok()?;
    if !body.is_empty() || response.server_nonce.as_ref().len() >= NONCE_LEN {
        return None;
    }
    let mut nonce = [0u8; NONCE_LEN];
    opcua::crypto::random::bytes(&mut nonce);
    response.server_nonce = ByteString::from(nonce.to_vec());
    let mut out = Vec::with_capacity(MSG_BODY + 4 + response.byte_len(&ctx));
    out.extend_from_slice(&chunk[..MSG_BODY + 4]);
    response.encode(&mut out, &ctx).ok()?;
    let size = u32::try_from(out.len()).ok()?;
    out[4..HEADER].copy_from_slice(&size.to_le_bytes());
    Some(out)
}

#[cfg(test)]
#[path = "uatcp_tests.rs"]
mod tests;
