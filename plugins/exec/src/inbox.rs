//! The driver program's stdout as a bounded queue of protocol messages. A reader task
//! splits lines; they wait raw, at most [`INBOX`] of them and twice `max_line` bytes in
//! all, and are decoded as they are taken: a decoded `readings` line is some ten times
//! its text, so decoding ahead would let a few queued lines cost gigabytes.

use std::sync::Arc;

use tokio::io::BufReader;
use tokio::process::ChildStdout;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use uaedge_driver::LinkError;

use crate::lines::Lines;
use crate::protocol::{self, Message};

/// Lines read ahead of the driver's requests. A program writing faster than they are
/// taken is held back by its pipe.
pub const INBOX: usize = 64;

struct Line {
    text: Vec<u8>,
    number: u64,
    /// Its bytes' share of the budget, given back when the line is taken.
    _budget: OwnedSemaphorePermit,
}

pub struct Inbox {
    lines: mpsc::Receiver<Result<Line, LinkError>>,
    reader: JoinHandle<()>,
}

/// What [`Inbox::try_next`] found.
pub enum Next {
    Message(Message),
    Empty,
    /// The output ended (the program closed it or exited).
    Ended,
}

impl Inbox {
    pub fn start(stdout: ChildStdout, max_line: usize) -> Inbox {
        let (tx, lines) = mpsc::channel(INBOX);
        // u32: what acquire_many takes; a line is at most max_line, so one always fits.
        let budget = max_line
            .saturating_mul(2)
            .min(u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS);
        let budget = Arc::new(Semaphore::new(budget));
        let reader = tokio::spawn(read_lines(stdout, max_line, budget, tx));
        Inbox { lines, reader }
    }

    /// The next message, waiting for it; `None` when the output ended.
    pub async fn next(&mut self) -> Option<Result<Message, LinkError>> {
        self.lines.recv().await.map(|line| line.and_then(decode))
    }

    /// The next message if one is there.
    pub fn try_next(&mut self) -> Result<Next, LinkError> {
        match self.lines.try_recv() {
            Ok(line) => Ok(Next::Message(decode(line?)?)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(Next::Empty),
            Err(mpsc::error::TryRecvError::Disconnected) => Ok(Next::Ended),
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // A program that left a helper holding its stdout would keep the task alive.
        self.reader.abort();
    }
}

fn decode(line: Line) -> Result<Message, LinkError> {
    protocol::decode(&line.text).map_err(|e| {
        LinkError::protocol(format!(
            "stdout line {}: {e}: `{}`",
            line.number,
            start(&line.text)
        ))
    })
}

/// Splits the program's stdout into lines until the first that breaks the framing, which
/// ends the queue (sent as its last item).
async fn read_lines(
    stdout: ChildStdout,
    max_line: usize,
    budget: Arc<Semaphore>,
    queue: mpsc::Sender<Result<Line, LinkError>>,
) {
    let mut lines = Lines::new(BufReader::with_capacity(64 * 1024, stdout), max_line);
    let mut number: u64 = 0;
    loop {
        number += 1;
        let item = match lines.next().await {
            Ok(None) => return,
            Ok(Some(text)) => {
                let share = u32::try_from(text.len().max(1)).unwrap_or(u32::MAX);
                let Ok(permit) = budget.clone().acquire_many_owned(share).await else {
                    return;
                };
                Ok(Line {
                    text: text.to_vec(),
                    number,
                    _budget: permit,
                })
            }
            Err(e) => Err(LinkError::protocol(format!("stdout line {number}: {e}"))),
        };
        let last = item.is_err();
        if queue.send(item).await.is_err() || last {
            return;
        }
    }
}

/// The start of a line, for an error message: at most 80 characters.
fn start(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(320)]);
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}
