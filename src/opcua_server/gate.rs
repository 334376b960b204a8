//! The OPC UA port: every TCP connection passes through here on its way to async-opcua,
//! which listens on a loopback port of its own.
//!
//! Why a gate in front of the server instead of handing it the socket:
//! - **Server nonce over SecurityPolicy None.** async-opcua 0.19 answers ActivateSession
//!   over None with a null server nonce; open62541 and UA .NET clients refuse the session
//!   (Part 4 asks for 32 bytes). The gate puts one in ([`uatcp::with_server_nonce`]). It
//!   can, because None is neither signed nor encrypted; secured channels pass untouched.
//!   The fix belongs upstream (a nonce from `random::byte_string(32)` in `activate_session`
//!   for every policy); until it is released, this is the least invasive correct place.
//! - **Quiet under abuse.** A connection must open with a well-formed Hello and then an
//!   OpenSecureChannel, or async-opcua never sees it. A connection that ends before its
//!   secure channel opens is a handshake failure: counted for `/metrics`, and logged at
//!   WARN at most once a minute per peer address (DEBUG otherwise), so a port scan or a
//!   broken client cannot flood the journal.
//!
//! Past the handshake, a secured channel is copied byte for byte; an unsecured one is
//! followed chunk by chunk ([`uatcp::ServerScanner`]) without holding data back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::uatcp::{self, Event, FrameError, ServerScanner, HEADER, NONE_POLICY, OPEN_PREFIX};
use crate::bus::ConnectionStats;

/// How long a new connection may take to send its Hello, and then its OpenSecureChannel.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Once one side has closed, how long the other gets to finish what it was sending.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Connections handled at once; more are closed at once (and counted), so that a flood
/// of idle sockets cannot take every file descriptor.
const MAX_CONNECTIONS: u64 = 1024;
/// Connections from one address at once, so that one peer cannot take all of them.
const MAX_PER_ADDRESS: u32 = 64;
/// A peer address's handshake failures are logged at WARN once per this.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered for the WARN limit before old ones are forgotten.
const MAX_REMEMBERED: usize = 4096;

/// Why a connection never got a secure channel.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("closed before its Hello")]
    NoHello,
    #[error("no OpenSecureChannel within {0:?}")]
    Timeout(Duration),
    #[error("refused by the server: {0}")]
    Refused(opcua::types::StatusCode),
    #[error("closed before the secure channel opened")]
    Closed,
    #[error("too many connections ({0})")]
    Full(u64),
    #[error("too many connections from this address ({0})")]
    FullForAddress(u32),
}

struct Gate {
    backend: SocketAddr,
    max_chunk: usize,
    stats: Arc<ConnectionStats>,
    warned: parking_lot::Mutex<HashMap<IpAddr, Instant>>,
    /// Open connections per peer address.
    per_address: parking_lot::Mutex<HashMap<IpAddr, u32>>,
}

/// Accepts on `listener` until `cancel`, relaying each connection to `backend`.
pub(super) async fn run(
    listener: TcpListener,
    backend: SocketAddr,
    max_chunk: usize,
    stats: Arc<ConnectionStats>,
    cancel: CancellationToken,
) {
    let gate = Arc::new(Gate {
        backend,
        max_chunk,
        stats,
        warned: parking_lot::Mutex::new(HashMap::new()),
        per_address: parking_lot::Mutex::new(HashMap::new()),
    });
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (client, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "OPC UA accept failed");
                // Out of file descriptors and the like: back off rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        gate.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = gate.stats.open.fetch_add(1, Ordering::Relaxed) + 1;
        let from_peer = {
            let mut per = gate.per_address.lock();
            let n = per.entry(peer.ip()).or_insert(0);
            *n += 1;
            *n
        };
        let gate = gate.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let outcome = if open > MAX_CONNECTIONS {
                Err(Failure::Full(open - 1))
            } else if from_peer > MAX_PER_ADDRESS {
                Err(Failure::FullForAddress(from_peer - 1))
            } else {
                // On shutdown the server closes its sessions through the relay; a
                // connection still open after that is cut.
                let cut = async {
                    cancel.cancelled().await;
                    tokio::time::sleep(CLOSE_GRACE).await;
                };
                tokio::select! {
                    _ = cut => Ok(()),
                    r = gate.relay(client, peer) => r,
                }
            };
            gate.stats.open.fetch_sub(1, Ordering::Relaxed);
            {
                let mut per = gate.per_address.lock();
                if let Some(n) = per.get_mut(&peer.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        per.remove(&peer.ip());
                    }
                }
            }
            match outcome {
                Ok(()) => debug!(peer = %peer, "OPC UA connection closed"),
                Err(failure) => gate.failed(peer, &failure),
            }
        });
    }
}

impl Gate {
    fn failed(&self, peer: SocketAddr, failure: &Failure) {
        self.stats
            .handshake_failures
            .fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let first = {
            let mut warned = self.warned.lock();
            if warned.len() >= MAX_REMEMBERED {
                warned.retain(|_, at| now.duration_since(*at) < WARN_EVERY);
            }
            match warned.get(&peer.ip()) {
                Some(at) if now.duration_since(*at) < WARN_EVERY => false,
                _ => {
                    // Still full of recent addresses: stay quiet rather than grow.
                    let room = warned.len() < MAX_REMEMBERED;
                    if room {
                        warned.insert(peer.ip(), now);
                    }
                    room
                }
            }
        };
        if first {
            warn!(peer = %peer, reason = %failure, "OPC UA connection failed before its secure channel opened; more from this address within a minute are logged at DEBUG");
        } else {
            debug!(peer = %peer, reason = %failure, "OPC UA connection failed before its secure channel opened");
        }
    }

    /// Relays one connection; `Err` when it ended before its secure channel opened.
    async fn relay(&self, mut client: TcpStream, peer: SocketAddr) -> Result<(), Failure> {
        let _ = client.set_nodelay(true);
        let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_hello(&mut client))
            .await
            .map_err(|_| Failure::Timeout(HANDSHAKE_TIMEOUT))??;
        let mut server = match TcpStream::connect(self.backend).await {
            Ok(s) => s,
            Err(e) => {
                // Not the peer's doing: the server behind the gate is gone (shutting down).
                debug!(peer = %peer, error = %e, "OPC UA server behind the gate unreachable");
                return Ok(());
            }
        };
        let _ = server.set_nodelay(true);
        server
            .write_all(&hello)
            .await
            .map_err(|_| Failure::Closed)?;
        debug!(peer = %peer, "OPC UA connection relayed");
        let (client_rd, client_wr) = client.into_split();
        let (server_rd, server_wr) = server.into_split();
        let unsecured = AtomicBool::new(false);
        let opened = AtomicBool::new(false);
        let refused = parking_lot::Mutex::new(None);
        let upstream = client_to_server(client_rd, server_wr, &unsecured, self.max_chunk);
        let downstream = server_to_client(
            server_rd,
            client_wr,
            &unsecured,
            &opened,
            &refused,
            self.max_chunk,
        );
        tokio::pin!(upstream, downstream);
        let first_up = tokio::select! {
            r = &mut upstream => Some(r),
            _ = &mut downstream => None,
        };
        if let Some(up) = first_up {
            // Whatever the client sent instead of an OpenSecureChannel never reached the
            // server; there is nothing to wait for.
            up?;
            // The client is done sending; let the server's last answers reach it.
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut downstream).await;
        }
        if opened.load(Ordering::Relaxed) {
            return Ok(());
        }
        let refused = *refused.lock();
        Err(match refused {
            Some(code) => Failure::Refused(opcua::types::StatusCode::from(code)),
            None => Failure::Closed,
        })
    }
}

/// The connection's first message, which must be a well-formed Hello.
async fn read_hello(client: &mut TcpStream) -> Result<Vec<u8>, Failure> {
    let mut head = [0u8; HEADER];
    client
        .read_exact(&mut head)
        .await
        .map_err(|_| Failure::NoHello)?;
    let h = uatcp::hello_header(&head)?;
    let mut hello = vec![0u8; h.size];
    hello[..HEADER].copy_from_slice(&head);
    client
        .read_exact(&mut hello[HEADER..])
        .await
        .map_err(|_| Failure::Closed)?;
    uatcp::hello(&hello)?;
    Ok(hello)
}

/// Checks that the client's next message opens a secure channel and notes whether it is an
/// unsecured one, then copies the rest of what the client sends.
async fn client_to_server(
    mut client: OwnedReadHalf,
    mut server: OwnedWriteHalf,
    unsecured: &AtomicBool,
    max_chunk: usize,
) -> Result<(), Failure> {
    let (prefix, policy) = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut prefix = [0u8; OPEN_PREFIX];
        client
            .read_exact(&mut prefix)
            .await
            .map_err(|_| Failure::Closed)?;
        let len = uatcp::open_policy_len(&prefix, max_chunk)?;
        let mut policy = vec![0u8; len];
        client
            .read_exact(&mut policy)
            .await
            .map_err(|_| Failure::Closed)?;
        Ok::<_, Failure>((prefix, policy))
    })
    .await
    .map_err(|_| Failure::Timeout(HANDSHAKE_TIMEOUT))??;
    unsecured.store(policy == NONE_POLICY, Ordering::Relaxed);
    server
        .write_all(&prefix)
        .await
        .map_err(|_| Failure::Closed)?;
    server
        .write_all(&policy)
        .await
        .map_err(|_| Failure::Closed)?;
    let _ = tokio::io::copy(&mut client, &mut server).await;
    let _ = server.shutdown().await;
    Ok(())
}

/// Passes the server's bytes on: followed chunk by chunk until the secure channel opens,
/// and for as long as it lasts when it is unsecured; copied plainly otherwise.
async fn server_to_client(
    mut server: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    unsecured: &AtomicBool,
    opened: &AtomicBool,
    refused: &parking_lot::Mutex<Option<u32>>,
    max_chunk: usize,
) {
    let mut scanner = ServerScanner::new(max_chunk);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut events = Vec::new();
    loop {
        let n = match server.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        out.clear();
        let none = unsecured.load(Ordering::Relaxed);
        if scanner
            .feed(&buf[..n], none, &mut out, &mut events)
            .is_err()
        {
            // async-opcua sent something that is not OPC UA TCP: nothing sensible to relay.
            break;
        }
        for e in events.drain(..) {
            match e {
                Event::Opened => opened.store(true, Ordering::Relaxed),
                Event::Refused(code) => *refused.lock() = Some(code),
                Event::NonceReplaced => debug!("ActivateSession server nonce filled in"),
            }
        }
        if client.write_all(&out).await.is_err() {
            break;
        }
        if opened.load(Ordering::Relaxed) && !none {
            // Secured: nothing more to look at. What the scanner still holds goes first;
            // plain copying carries the rest of its chunk and everything after.
            let held = scanner.take_held();
            if client.write_all(&held).await.is_ok() {
                let _ = tokio::io::copy(&mut server, &mut client).await;
            }
            break;
        }
    }
    let _ = client.shutdown().await;
}
