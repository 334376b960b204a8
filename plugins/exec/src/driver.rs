//! The conversation of PROTOCOL.md with one running driver program, behind the `Driver`
//! trait: connect starts the program and waits for its hello and its `configure` answer,
//! read and write are one request and its answer each, and any breach of the protocol,
//! a silence past the timeout or the end of the program is a link error, after which the
//! runtime disconnects (the program is stopped) and connects again (after the backoff).

use std::time::Instant;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::ChildStdout;
use tokio::sync::mpsc;
use tracing::{info, warn};
use uaedge_driver::json::ValueJson;
use uaedge_driver::{
    BadReason, DeviceInfo, Driver, LinkError, Reading, TagSpec, Value, WriteError,
};

use crate::child::Child;
use crate::lines::Lines;
use crate::options::ExecOptions;
use crate::protocol::{self, ErrorKind, Hello, Message, RawReading, Request, TagOut};

/// Messages read ahead of the driver's requests. A program writing faster than that is
/// held back by its pipe.
const INBOX: usize = 64;
/// Pushed readings kept for the next poll; past that the oldest go. A driver that pushes
/// more between two polls than this pushes faster than any consumer takes.
const PENDING: usize = 65_536;
/// How long a program whose output ended is given to exit, for its status in the log.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub struct ExecDriver {
    device: String,
    poll_interval_ms: u64,
    options: ExecOptions,
    tags: Vec<TagSpec<String>>,
    running: Option<Running>,
    next_id: u64,
    /// Failures in a row, for the restart backoff; when the last one was.
    failures: u32,
    failed_at: Option<Instant>,
    /// Per tag: what was last logged of it being Bad, so each problem is logged once.
    logged: Vec<Option<String>>,
    /// Tags the program refused at `configure`: Bad (ConfigError) until it restarts.
    refused: Vec<bool>,
    /// Whether a reading for an index out of range was logged (once per program start).
    unknown_logged: bool,
    /// Pushed readings dropped past [`PENDING`] since the last poll, logged at the poll.
    dropped: u64,
    /// Readings due at the next read: the refused tags' Bad ones, data pushed meanwhile.
    pending: Vec<Reading>,
}

struct Running {
    child: Child,
    inbox: mpsc::Receiver<Result<Message, LinkError>>,
    reader: tokio::task::JoinHandle<()>,
    hello: Hello,
    started: Instant,
}

impl ExecDriver {
    pub fn new(info: &DeviceInfo, options: ExecOptions, tags: Vec<TagSpec<String>>) -> Self {
        let n = tags.len();
        ExecDriver {
            device: info.name.clone(),
            poll_interval_ms: u64::try_from(info.poll_interval.as_millis()).unwrap_or(u64::MAX),
            options,
            tags,
            running: None,
            next_id: 0,
            failures: 0,
            failed_at: None,
            logged: vec![None; n],
            refused: vec![false; n],
            unknown_logged: false,
            dropped: 0,
            pending: Vec::new(),
        }
    }

    /// Starts the program and holds the conversation up to the `configure` answer.
    async fn start(&mut self) -> Result<(), LinkError> {
        let program = self.options.program();
        let (child, stdout) = program.spawn(&self.device).map_err(|e| {
            LinkError::not_connected(format!(
                "cannot start `{}`: {e}",
                self.options.command.join(" ")
            ))
        })?;
        let (tx, inbox) = mpsc::channel(INBOX);
        let reader = tokio::spawn(read_messages(stdout, self.options.max_line(), tx));
        let mut running = Running {
            child,
            inbox,
            reader,
            hello: Hello {
                protocol: protocol::VERSION,
                driver: None,
                version: None,
                read: true,
                write: false,
                push: false,
            },
            started: Instant::now(),
        };
        // From here on `running` is kept even on failure, so disconnect stops the program.
        let hello =
            tokio::time::timeout(self.options.startup_timeout.get(), running.inbox.recv()).await;
        let outcome = match hello {
            Err(_) => Err(LinkError::timeout(format!(
                "no hello within startup_timeout ({})",
                self.options.startup_timeout
            ))),
            Ok(None) => Err(LinkError::not_connected("the driver's output ended")),
            Ok(Some(Err(e))) => Err(e),
            Ok(Some(Ok(Message::Hello(h)))) if h.protocol == protocol::VERSION => Ok(h),
            Ok(Some(Ok(Message::Hello(h)))) => Err(LinkError::protocol(format!(
                "the driver speaks protocol {}, uaedge speaks {}",
                h.protocol,
                protocol::VERSION
            ))),
            Ok(Some(Ok(other))) => Err(LinkError::protocol(format!(
                "the first line was not a hello but {}",
                describe(&other)
            ))),
        };
        self.running = Some(running);
        let hello = outcome?;
        info!(
            device = %self.device,
            driver = hello.driver.as_deref().unwrap_or("?"),
            version = hello.version.as_deref().unwrap_or("?"),
            read = hello.read,
            write = hello.write,
            push = hello.push,
            "exec driver started"
        );
        if let Some(r) = self.running.as_mut() {
            r.hello = hello;
        }
        self.configure().await
    }

    async fn configure(&mut self) -> Result<(), LinkError> {
        let id = self.id();
        let tags = self
            .tags
            .iter()
            .zip(0u32..)
            .map(|(t, tag)| TagOut {
                tag,
                name: &t.name,
                data_type: t.data_type,
                address: &t.address,
                writable: t.writable,
            })
            .collect();
        let line = Request::Configure {
            id,
            device: &self.device,
            poll_interval_ms: self.poll_interval_ms,
            tags,
        }
        .encode();
        self.send(&line).await?;
        match self.answer(id).await? {
            Message::Ok { tag_errors, .. } => {
                self.refused.iter_mut().for_each(|r| *r = false);
                for e in tag_errors {
                    let Some(i) = self.index(e.tag) else {
                        self.log_unknown_tag(e.tag);
                        continue;
                    };
                    self.refused[i] = true;
                    self.log_bad(i, format!("the driver refused the tag: {}", e.message));
                    self.pending
                        .push(Reading::bad(e.tag, BadReason::ConfigError));
                }
                Ok(())
            }
            Message::Error { kind, message, .. } => Err(read_error(kind, &message, "configure")),
            other => Err(unexpected(&other, "configure")),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn index(&self, tag: u32) -> Option<usize> {
        usize::try_from(tag).ok().filter(|&i| i < self.tags.len())
    }

    /// Writes one request line, within the request timeout (a program that stopped
    /// reading its stdin fills the pipe).
    async fn send(&mut self, line: &[u8]) -> Result<(), LinkError> {
        let timeout = self.options.request_timeout;
        let stdin = self
            .running
            .as_mut()
            .and_then(|r| r.child.stdin.as_mut())
            .ok_or_else(|| LinkError::not_connected("the driver is not running"))?;
        let write = async {
            stdin.write_all(line).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(timeout.get(), write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.ended(format!("writing to the driver: {e}")).await),
            Err(_) => Err(LinkError::timeout(format!(
                "the driver took no request within request_timeout ({timeout})"
            ))),
        }
    }

    /// Waits for the answer to request `id`, taking pushed data on the way.
    async fn answer(&mut self, id: u64) -> Result<Message, LinkError> {
        let timeout = self.options.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout.get();
        loop {
            let running = self
                .running
                .as_mut()
                .ok_or_else(|| LinkError::not_connected("the driver is not running"))?;
            let next = tokio::time::timeout_at(deadline, running.inbox.recv()).await;
            let message = match next {
                Err(_) => {
                    return Err(LinkError::timeout(format!(
                        "no answer within request_timeout ({timeout})"
                    )))
                }
                Ok(None) => return Err(self.ended("the driver's output ended".into()).await),
                Ok(Some(m)) => m?,
            };
            match message {
                Message::Data { readings } => self.take_pushed(&readings)?,
                Message::Ok { id: got, .. }
                | Message::Readings { id: got, .. }
                | Message::Error { id: got, .. }
                    if got == id =>
                {
                    return Ok(message)
                }
                other => return Err(unexpected(&other, "an answer")),
            }
        }
    }

    /// The link error for a program whose pipes closed: with its exit status if it has one.
    async fn ended(&mut self, what: String) -> LinkError {
        let status = match self.running.as_mut() {
            Some(r) => r.child.exited(EXIT_WAIT).await,
            None => None,
        };
        match status {
            Some(status) => {
                LinkError::not_connected(format!("{what}: the driver exited ({status})"))
            }
            None => LinkError::not_connected(what),
        }
    }

    fn take_pushed(&mut self, readings: &[RawReading]) -> Result<(), LinkError> {
        if !self.running.as_ref().is_some_and(|r| r.hello.push) {
            return Err(LinkError::protocol(
                "a `data` line from a driver whose hello did not say `push: true`",
            ));
        }
        self.convert(readings);
        if self.pending.len() > PENDING {
            let drop = self.pending.len() - PENDING;
            self.dropped += drop as u64;
            self.pending.drain(..drop);
        }
        Ok(())
    }

    /// Checks each reading against its tag into `pending`: a reading that does not fit
    /// makes its tag Bad (ConfigError), logged once.
    fn convert(&mut self, readings: &[RawReading]) {
        self.pending.reserve(readings.len());
        for raw in readings {
            let Some(i) = self.index(raw.tag) else {
                self.log_unknown_tag(raw.tag);
                continue;
            };
            if self.refused[i] {
                continue;
            }
            match raw.to_reading(self.tags[i].data_type) {
                Ok(reading) => {
                    match (&raw.error, reading.quality.is_bad()) {
                        (Some(e), true) => self.log_bad(i, e.clone()),
                        (None, true) => self.log_bad(i, format!("{}", reading.quality)),
                        (_, false) => self.logged[i] = None,
                    }
                    self.pending.push(reading);
                }
                Err(e) => {
                    self.log_bad(i, e.to_string());
                    self.pending
                        .push(Reading::bad(raw.tag, BadReason::ConfigError));
                }
            }
        }
    }

    fn log_bad(&mut self, i: usize, why: String) {
        if self.logged[i].as_deref() != Some(why.as_str()) {
            warn!(device = %self.device, tag = %self.tags[i].name, "{why}");
            self.logged[i] = Some(why);
        }
    }

    fn log_unknown_tag(&mut self, tag: u32) {
        if !self.unknown_logged {
            warn!(device = %self.device, tag, "a reading for a tag index uaedge did not configure; dropped");
            self.unknown_logged = true;
        }
    }

    /// Counts a failure for the restart backoff.
    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.failed_at = Some(Instant::now());
    }

    /// A program that ran for `restart.max` starts the failure count again.
    fn healthy(&mut self) {
        if self.failures > 0
            && self
                .running
                .as_ref()
                .is_some_and(|r| r.started.elapsed() >= self.options.restart.max.get())
        {
            self.failures = 0;
        }
    }

    async fn stop_program(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.reader.abort();
        let pid = running.child.pid().unwrap_or(0);
        if let Some(status) = running.child.stop().await {
            info!(device = %self.device, pid, %status, "exec driver stopped");
        } else {
            warn!(device = %self.device, pid, "exec driver did not exit after SIGKILL");
        }
        self.unknown_logged = false;
        self.pending.clear();
    }
}

#[uaedge_driver::async_trait]
impl Driver for ExecDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        if let Some(at) = self.failed_at.filter(|_| self.failures > 0) {
            let wait = self.options.restart.delay(self.failures - 1);
            tokio::time::sleep(wait.saturating_sub(at.elapsed())).await;
        }
        self.stop_program().await;
        let started = self.start().await;
        if started.is_err() {
            self.failed();
            self.stop_program().await;
        }
        started
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let result = self.poll().await;
        if self.dropped > 0 {
            warn!(device = %self.device, dropped = self.dropped, "pushed readings dropped: the driver pushes more between two polls than uaedge keeps ({PENDING})");
            self.dropped = 0;
        }
        match result {
            Ok(()) => {
                self.healthy();
                out.append(&mut self.pending);
            }
            Err(_) => self.failed(),
        }
        result
    }

    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError> {
        if !self.running.as_ref().is_some_and(|r| r.hello.write) {
            return Err(WriteError::NotWritable);
        }
        if self.index(tag).is_some_and(|i| self.refused[i]) {
            return Err(WriteError::Rejected(
                "the driver refused this tag's address when it started".into(),
            ));
        }
        let id = self.id();
        let value = Some(value.clone());
        let line = Request::Write {
            id,
            tag,
            value: ValueJson(&value),
        }
        .encode();
        let answer = async {
            self.send(&line).await?;
            self.answer(id).await
        }
        .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.failed();
                return Err(WriteError::Link(e));
            }
        };
        match answer {
            Message::Ok { .. } => Ok(()),
            Message::Error { kind, message, .. } => Err(match kind {
                ErrorKind::Rejected => WriteError::Rejected(message),
                ErrorKind::NotWritable => WriteError::NotWritable,
                ErrorKind::TypeMismatch => WriteError::TypeMismatch(message),
                // The program is fine, its device is away: the write fails, the program
                // keeps running (its reads say the rest).
                ErrorKind::NotConnected => {
                    WriteError::Rejected(format!("the device is not connected: {message}"))
                }
            }),
            other => {
                self.failed();
                Err(WriteError::Link(unexpected(&other, "write")))
            }
        }
    }

    async fn disconnect(&mut self) {
        self.stop_program().await;
    }
}

impl ExecDriver {
    /// The running program's pid (its process group's id).
    pub fn pid(&self) -> Option<i32> {
        self.running.as_ref().and_then(|r| r.child.pid())
    }

    /// One poll: what was pushed since the last, and the answer to a `read` if the driver
    /// answers reads.
    async fn poll(&mut self) -> Result<(), LinkError> {
        let Some(running) = self.running.as_mut() else {
            return Err(LinkError::not_connected("the driver is not running"));
        };
        let reads = running.hello.read;
        // Pushed data that came between polls: what the inbox held, no more, so that a
        // driver pushing without pause cannot keep the poll from its read.
        let mut queued = INBOX;
        while let Some(running) = self.running.as_mut().filter(|_| queued > 0) {
            queued -= 1;
            match running.inbox.try_recv() {
                Ok(Ok(Message::Data { readings })) => self.take_pushed(&readings)?,
                Ok(Ok(other)) => return Err(unexpected(&other, "a poll")),
                Ok(Err(e)) => return Err(e),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Err(self.ended("the driver's output ended".into()).await)
                }
            }
        }
        if !reads {
            return Ok(());
        }
        let id = self.id();
        self.send(&Request::Read { id }.encode()).await?;
        match self.answer(id).await? {
            Message::Readings { readings, .. } => {
                self.convert(&readings);
                Ok(())
            }
            Message::Error { kind, message, .. } => Err(read_error(kind, &message, "read")),
            other => Err(unexpected(&other, "read")),
        }
    }
}

/// Reads the program's stdout into messages until the first that breaks the protocol,
/// which ends the conversation (sent as the last item).
async fn read_messages(
    stdout: ChildStdout,
    max_line: usize,
    inbox: mpsc::Sender<Result<Message, LinkError>>,
) {
    let mut lines = Lines::new(BufReader::with_capacity(64 * 1024, stdout), max_line);
    let mut number: u64 = 0;
    loop {
        number += 1;
        let item = match lines.next().await {
            Ok(None) => return,
            Ok(Some(line)) => protocol::decode(line).map_err(|e| {
                LinkError::protocol(format!("stdout line {number}: {e}: `{}`", start(line)))
            }),
            Err(e) => Err(LinkError::protocol(format!("stdout line {number}: {e}"))),
        };
        let last = item.is_err();
        if inbox.send(item).await.is_err() || last {
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

fn describe(message: &Message) -> String {
    match message {
        Message::Hello(_) => "a second hello".into(),
        Message::Ok { id, .. } => format!("`ok` for request {id}"),
        Message::Readings { id, .. } => format!("`readings` for request {id}"),
        Message::Data { .. } => "`data`".into(),
        Message::Error { id, .. } => format!("`error` for request {id}"),
    }
}

fn unexpected(message: &Message, waiting_for: &str) -> LinkError {
    LinkError::protocol(format!(
        "{} while waiting for {waiting_for}",
        describe(message)
    ))
}

/// An `error` answer to `configure` or `read`: the device's link is down.
fn read_error(kind: ErrorKind, message: &str, request: &str) -> LinkError {
    match kind {
        ErrorKind::NotConnected => LinkError::not_connected(message.to_string()),
        ErrorKind::Rejected => {
            LinkError::protocol(format!("the driver failed `{request}`: {message}"))
        }
        ErrorKind::NotWritable | ErrorKind::TypeMismatch => LinkError::protocol(format!(
            "an error of a write's kind answering `{request}`: {message}"
        )),
    }
}
