//! The conversation of PROTOCOL.md with one running driver program, behind the `Driver`
//! trait: connect starts the program and waits for its hello and its `configure` answer,
//! read and write are one request and its answer each, and any breach of the protocol,
//! a silence past the timeout or the end of the program is a link error, after which the
//! runtime disconnects (the program is stopped) and connects again after the device's
//! `reconnect` backoff.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tracing::{info, warn};
use uaedge_driver::json::ValueJson;
use uaedge_driver::{
    BadReason, DeviceInfo, Driver, LinkError, Reading, TagSpec, Timestamp, Value, WriteError,
};

use crate::child::Child;
use crate::inbox::{Inbox, Next, INBOX};
use crate::options::ExecOptions;
use crate::protocol::{self, ErrorKind, Hello, Message, RawReading, Request, TagOut};

/// Pushed readings kept for the next poll; past that the oldest go. More than this between
/// two polls is more than any consumer takes.
pub const PENDING: usize = 65_536;
/// How long a program whose output ended is given to exit, for its status in the log.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// How often dropped pushed readings are logged, at most.
const DROP_LOG: std::time::Duration = std::time::Duration::from_secs(60);

pub struct ExecDriver {
    device: String,
    poll_interval_ms: u64,
    options: ExecOptions,
    tags: Vec<TagSpec<String>>,
    running: Option<Running>,
    next_id: u64,
    /// Per tag: the kind of trouble last logged for it, so each is logged once.
    logged: Vec<Option<Trouble>>,
    /// Tags the program refused at `configure`: Bad (ConfigError) until it restarts.
    refused: Vec<bool>,
    /// Whether the refused tags' Bad readings are still to be handed out.
    announce_refused: bool,
    /// Whether a reading for an index out of range was logged (once per program start).
    unknown_logged: bool,
    /// Pushed readings dropped past [`PENDING`] and not logged yet, and when they last were.
    dropped: u64,
    dropped_logged: Option<Instant>,
    /// Pushed readings due at the next poll.
    pending: VecDeque<Reading>,
}

struct Running {
    child: Child,
    inbox: Inbox,
    hello: Hello,
}

/// What was wrong with a tag, as far as logging it once goes: the kind, not the text (a
/// value that keeps not fitting logs once, not at every poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Refused,
    Value,
    Time,
    Bad(uaedge_driver::Quality),
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
            logged: vec![None; n],
            refused: vec![false; n],
            announce_refused: false,
            unknown_logged: false,
            dropped: 0,
            dropped_logged: None,
            pending: VecDeque::new(),
        }
    }

    /// The running program's pid (its process group's id).
    pub fn pid(&self) -> Option<i32> {
        self.running.as_ref().and_then(|r| r.child.pid())
    }

    /// Starts the program and holds the conversation up to the `configure` answer.
    async fn start(&mut self) -> Result<(), LinkError> {
        let (child, stdout) = self.options.program().spawn(&self.device).map_err(|e| {
            LinkError::not_connected(format!(
                "cannot start `{}`: {e}",
                self.options.command.join(" ")
            ))
        })?;
        let running = self.running.insert(Running {
            child,
            inbox: Inbox::start(stdout, self.options.max_line()),
            hello: Hello {
                protocol: protocol::VERSION,
                driver: None,
                version: None,
                read: true,
                write: false,
                push: false,
            },
        });
        let first =
            tokio::time::timeout(self.options.startup_timeout.get(), running.inbox.next()).await;
        let hello = match first {
            Err(_) => Err(LinkError::timeout(format!(
                "no hello within startup_timeout ({})",
                self.options.startup_timeout
            ))),
            Ok(None) => Err(self.ended("the driver's output ended".into()).await),
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
        }?;
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
                    self.log_bad(
                        i,
                        Trouble::Refused,
                        format!("the driver refused the tag: {}", e.message),
                    );
                }
                self.announce_refused = self.refused.contains(&true);
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
            let message = match tokio::time::timeout_at(deadline, running.inbox.next()).await {
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

    /// The link error for a program whose pipes closed: with how it ended if it has.
    async fn ended(&mut self, what: String) -> LinkError {
        let how = match self.running.as_ref() {
            Some(r) => r.child.ended_within(EXIT_WAIT).await,
            None => None,
        };
        match how {
            Some(how) => LinkError::not_connected(format!("{what}: the driver exited ({how})")),
            None => LinkError::not_connected(what),
        }
    }

    fn take_pushed(&mut self, readings: &[RawReading]) -> Result<(), LinkError> {
        if !self.running.as_ref().is_some_and(|r| r.hello.push) {
            return Err(LinkError::protocol(
                "a `data` line from a driver whose hello did not say `push: true`",
            ));
        }
        // A pushed reading without a time of its own was made when its line came, not at
        // the poll that hands it on.
        let now = Timestamp::now();
        let mut out = std::mem::take(&mut self.pending);
        self.convert(readings, Some(now), &mut out);
        if out.len() > PENDING {
            let drop = out.len() - PENDING;
            self.dropped += drop as u64;
            out.drain(..drop);
        }
        self.pending = out;
        Ok(())
    }

    /// Checks each reading against its tag into `out`: a reading that does not fit makes
    /// its tag Bad (ConfigError), logged once.
    fn convert(
        &mut self,
        readings: &[RawReading],
        stamp: Option<Timestamp>,
        out: &mut impl Extend<Reading>,
    ) {
        for raw in readings {
            let Some(i) = self.index(raw.tag) else {
                self.log_unknown_tag(raw.tag);
                continue;
            };
            if self.refused[i] {
                continue;
            }
            let reading = match raw.to_reading(self.tags[i].data_type) {
                Ok(mut reading) => {
                    if reading.quality.is_bad() {
                        let why = raw
                            .error
                            .clone()
                            .unwrap_or_else(|| reading.quality.to_string());
                        self.log_bad(i, Trouble::Bad(reading.quality), why);
                    } else {
                        self.logged[i] = None;
                    }
                    reading.source_time = reading.source_time.or(stamp);
                    reading
                }
                Err(e) => {
                    let trouble = match e {
                        protocol::ReadingError::Value { .. } => Trouble::Value,
                        protocol::ReadingError::Time(_) => Trouble::Time,
                    };
                    self.log_bad(i, trouble, e.to_string());
                    Reading::bad(raw.tag, BadReason::ConfigError)
                }
            };
            out.extend(std::iter::once(reading));
        }
    }

    fn log_bad(&mut self, i: usize, trouble: Trouble, why: String) {
        if self.logged[i] != Some(trouble) {
            warn!(device = %self.device, tag = %self.tags[i].name, "{why}");
            self.logged[i] = Some(trouble);
        }
    }

    fn log_unknown_tag(&mut self, tag: u32) {
        if !self.unknown_logged {
            warn!(device = %self.device, tag, "a reading for a tag index uaedge did not configure; dropped");
            self.unknown_logged = true;
        }
    }

    fn log_dropped(&mut self) {
        if self.dropped == 0 || self.dropped_logged.is_some_and(|t| t.elapsed() < DROP_LOG) {
            return;
        }
        warn!(
            device = %self.device,
            dropped = self.dropped,
            "pushed readings dropped: the driver pushes more between two polls than uaedge keeps ({PENDING})"
        );
        self.dropped = 0;
        self.dropped_logged = Some(Instant::now());
    }

    async fn stop_program(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let pid = running.child.pid().unwrap_or(0);
        drop(running.inbox);
        match running.child.stop().await {
            Some(how) => info!(device = %self.device, pid, "exec driver stopped ({how})"),
            None => warn!(device = %self.device, pid, "exec driver did not exit after SIGKILL"),
        }
        self.unknown_logged = false;
        self.pending.clear();
    }

    /// One poll: the refused tags' Bad readings once, what was pushed since the last poll,
    /// and the answer to a `read` if the driver answers reads.
    async fn poll(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let Some(running) = self.running.as_ref() else {
            return Err(LinkError::not_connected("the driver is not running"));
        };
        // A push-only driver is asked nothing: its end shows here, even while a helper it
        // started still holds its output open.
        if let Some(how) = running.child.ended() {
            return Err(LinkError::not_connected(format!(
                "the driver exited ({how})"
            )));
        }
        let reads = running.hello.read;
        if std::mem::take(&mut self.announce_refused) {
            out.extend(
                (0u32..)
                    .zip(&self.refused)
                    .filter(|(_, r)| **r)
                    .map(|(tag, _)| Reading::bad(tag, BadReason::ConfigError)),
            );
        }
        // Pushed lines that came between polls: what the inbox held, no more, so that a
        // driver pushing without pause cannot keep the poll from its read.
        for _ in 0..INBOX {
            let Some(running) = self.running.as_mut() else {
                break;
            };
            match running.inbox.try_next()? {
                Next::Message(Message::Data { readings }) => self.take_pushed(&readings)?,
                Next::Message(other) => return Err(unexpected(&other, "a poll")),
                Next::Empty => break,
                Next::Ended => return Err(self.ended("the driver's output ended".into()).await),
            }
        }
        if reads {
            let id = self.id();
            self.send(&Request::Read { id }.encode()).await?;
            match self.answer(id).await? {
                Message::Readings { readings, .. } => {
                    out.extend(self.pending.drain(..));
                    self.convert(&readings, None, out);
                }
                Message::Error { kind, message, .. } => {
                    return Err(read_error(kind, &message, "read"))
                }
                other => return Err(unexpected(&other, "read")),
            }
        }
        out.extend(self.pending.drain(..));
        Ok(())
    }
}

#[uaedge_driver::async_trait]
impl Driver for ExecDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        self.stop_program().await;
        let started = self.start().await;
        if started.is_err() {
            self.stop_program().await;
        }
        started
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let result = self.poll(out).await;
        self.log_dropped();
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
        self.send(&line).await?;
        match self.answer(id).await? {
            Message::Ok { .. } => Ok(()),
            Message::Error { kind, message, .. } => {
                let name = self.index(tag).map_or("?", |i| self.tags[i].name.as_str());
                warn!(device = %self.device, tag = %name, ?kind, "the driver refused a write: {message}");
                Err(match kind {
                    ErrorKind::Rejected => WriteError::Rejected(message),
                    ErrorKind::NotWritable => WriteError::NotWritable,
                    ErrorKind::TypeMismatch => WriteError::TypeMismatch(message),
                    // The program is fine, its device is away: the write fails, the
                    // program keeps running (its reads say the rest).
                    ErrorKind::NotConnected => {
                        WriteError::Rejected(format!("the device is not connected: {message}"))
                    }
                })
            }
            other => Err(WriteError::Link(unexpected(&other, "write"))),
        }
    }

    async fn disconnect(&mut self) {
        self.stop_program().await;
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
