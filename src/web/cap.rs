//! A cap on the web server's open connections, taken as each one is accepted: past
//! [`MAX_CONNECTIONS`] a new connection is answered 503 (plain HTTP) or closed (TLS) at
//! once, so a flood of idle or slow clients costs a bounded amount of memory and
//! descriptors (the unit allows 65,536; the web and metrics listeners take 1,024 each at
//! most).
//!
//! A plain connection must also start its first request within
//! [`HEADER_READ_TIMEOUT`]: hyper's header timer (which closes a kept-alive connection
//! idle that long between requests) starts only with the first byte, so a client that
//! connects and never writes would otherwise hold its slot for ever. A TLS connection has
//! the handshake's timeout instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::HEADER_READ_TIMEOUT;

/// Connections open at once, per listener.
pub const MAX_CONNECTIONS: usize = 1024;

/// How often a refusal is logged at most (with the count since the server started).
const WARN_EVERY: Duration = Duration::from_secs(60);

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 10\r\nConnection: close\r\nContent-Length: 77\r\n\r\n{\"error\":\"busy\",\"message\":\"too many open connections; try again in a moment\"}";

/// Wraps the acceptor of a listener (plain or TLS) with the cap.
#[derive(Clone)]
pub struct Capped<A> {
    inner: A,
    slots: Arc<Semaphore>,
    /// The listener speaks plain HTTP, so a refusal can be answered in HTTP.
    plain: bool,
    refusals: Arc<Refusals>,
    /// The server stops: a connection still waiting for its first byte goes at once.
    stop: CancellationToken,
}

#[derive(Default)]
struct Refusals {
    count: AtomicU64,
    warned: Mutex<Option<Instant>>,
}

impl<A> Capped<A> {
    pub fn new(inner: A, plain: bool, limit: usize, stop: CancellationToken) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(limit)),
            plain,
            refusals: Arc::default(),
            stop,
        }
    }
}

impl Refusals {
    fn record(&self) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut warned = self.warned.lock();
        if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *warned = Some(Instant::now());
            warn!(
                refused = count,
                limit = MAX_CONNECTIONS,
                "web server at its connection limit; new connections refused"
            );
        }
    }
}

impl<A, S> Accept<TcpStream, S> for Capped<A>
where
    A: Accept<TcpStream, S> + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = Held<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, mut stream: TcpStream, service: S) -> Self::Future {
        let permit = self.slots.clone().try_acquire_owned();
        let inner = self.inner.clone();
        let plain = self.plain;
        let refusals = self.refusals.clone();
        let stop = self.stop.clone();
        Box::pin(async move {
            let Ok(permit) = permit else {
                refusals.record();
                if plain {
                    refuse(&mut stream).await;
                }
                return Err(io::Error::other("connection limit reached"));
            };
            // `peek`, not `readable`, which answered before a byte was there.
            if plain {
                let mut first_byte = [0u8; 1];
                let first = tokio::select! {
                    _ = stop.cancelled() => None,
                    r = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first_byte)) => r.ok(),
                };
                if first.is_none() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header timeout",
                    ));
                }
            }
            let (stream, service) = inner.accept(stream, service).await?;
            Ok((
                Held {
                    stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// Answers 503 and lets go, briefly: the answer is written, the sending side shut, and
/// what the client sent is drained for a moment, so that closing with unread data (a
/// reset) does not throw the answer away before the client reads it.
async fn refuse(stream: &mut TcpStream) {
    let brief = Duration::from_millis(500);
    if tokio::time::timeout(brief, stream.write_all(BUSY))
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(brief, stream.shutdown()).await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(brief, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A connection holding its slot until it closes.
pub struct Held<S> {
    stream: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::BUSY;

    #[test]
    fn the_busy_answer_states_its_length() {
        let text = std::str::from_utf8(BUSY).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(body).is_ok(),
            "{body}"
        );
    }
}
