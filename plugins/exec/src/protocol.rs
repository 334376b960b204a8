//! The messages of PROTOCOL.md: what a driver program writes (decoded here, from one
//! line each) and what uaedge writes to it (encoded here). The rules of a conversation
//! (which answer may come when) live in the driver.

use serde::{Deserialize, Serialize};
use uaedge_driver::json::{parse_rfc3339, value_from_json, ValueJson};
use uaedge_driver::{BadReason, DataType, Quality, Reading, UncertainReason};

/// The protocol version this uaedge speaks.
pub const VERSION: u32 = 1;

/// A line the driver program wrote, checked for the keys its `type` needs.
#[derive(Debug, PartialEq)]
pub enum Message {
    Hello(Hello),
    Ok {
        id: u64,
        tag_errors: Vec<TagError>,
    },
    Readings {
        id: u64,
        readings: Vec<RawReading>,
    },
    Data {
        readings: Vec<RawReading>,
    },
    Error {
        id: u64,
        kind: ErrorKind,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub protocol: u32,
    pub driver: Option<String>,
    pub version: Option<String>,
    pub read: bool,
    pub write: bool,
    pub push: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TagError {
    pub tag: u32,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    #[default]
    Rejected,
    NotConnected,
    NotWritable,
    TypeMismatch,
}

/// One reading as the driver wrote it: not yet checked against the tag's type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RawReading {
    pub tag: u32,
    #[serde(default)]
    pub value: serde_json::Value,
    #[serde(default)]
    pub quality: QualityName,
    pub reason: Option<ReasonName>,
    pub time: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QualityName {
    #[default]
    Good,
    Uncertain,
    Bad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonName {
    NotConnected,
    CommFailure,
    DeviceFailure,
    ConfigError,
    OutOfService,
}

/// Why a line is not a protocol message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a protocol message: {0}")]
    Json(String),
    #[error("`{kind}` without `{key}`")]
    Missing {
        kind: &'static str,
        key: &'static str,
    },
    #[error("unknown message type `{0}`")]
    UnknownType(String),
}

/// Every key any message may have, flat: one pass of serde over the line, no buffering
/// of the message to look at its `type` first (a `readings` line may hold thousands).
#[derive(Deserialize)]
struct Flat {
    #[serde(rename = "type")]
    kind: String,
    id: Option<u64>,
    protocol: Option<u32>,
    driver: Option<String>,
    version: Option<String>,
    read: Option<bool>,
    write: Option<bool>,
    push: Option<bool>,
    readings: Option<Vec<RawReading>>,
    tag_errors: Option<Vec<TagError>>,
    message: Option<String>,
    #[serde(rename = "kind")]
    error_kind: Option<ErrorKind>,
}

/// Decodes one line (without its newline).
pub fn decode(line: &[u8]) -> Result<Message, DecodeError> {
    let flat: Flat = serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))?;
    let missing = |kind, key| DecodeError::Missing { kind, key };
    Ok(match flat.kind.as_str() {
        "hello" => Message::Hello(Hello {
            protocol: flat.protocol.ok_or(missing("hello", "protocol"))?,
            driver: flat.driver,
            version: flat.version,
            read: flat.read.unwrap_or(true),
            write: flat.write.unwrap_or(false),
            push: flat.push.unwrap_or(false),
        }),
        "ok" => Message::Ok {
            id: flat.id.ok_or(missing("ok", "id"))?,
            tag_errors: flat.tag_errors.unwrap_or_default(),
        },
        "readings" => Message::Readings {
            id: flat.id.ok_or(missing("readings", "id"))?,
            readings: flat.readings.ok_or(missing("readings", "readings"))?,
        },
        "data" => Message::Data {
            readings: flat.readings.ok_or(missing("data", "readings"))?,
        },
        "error" => Message::Error {
            id: flat.id.ok_or(missing("error", "id"))?,
            kind: flat.error_kind.unwrap_or_default(),
            message: flat.message.unwrap_or_default(),
        },
        other => return Err(DecodeError::UnknownType(other.chars().take(40).collect())),
    })
}

/// What is wrong with one reading; the tag turns Bad (ConfigError).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadingError {
    #[error("value {value} does not fit the tag's type: {why}")]
    Value { value: String, why: String },
    #[error("time `{0}` is not an RFC 3339 time")]
    Time(String),
}

impl RawReading {
    /// The reading as the model takes it, for a tag of type `to`. A reading that does not
    /// fit is the error, for the caller to log once and report as a Bad tag.
    pub fn to_reading(&self, to: DataType) -> Result<Reading, ReadingError> {
        let value = match &self.value {
            serde_json::Value::Null => None,
            v => Some(value_from_json(v, to).map_err(|why| ReadingError::Value {
                value: short(v),
                why,
            })?),
        };
        let source_time = match &self.time {
            None => None,
            Some(t) => Some(parse_rfc3339(t).map_err(|_| ReadingError::Time(t.clone()))?),
        };
        let quality = match self.quality {
            QualityName::Good => Quality::Good,
            QualityName::Uncertain => Quality::Uncertain(UncertainReason::LastUsableValue),
            QualityName::Bad => Quality::Bad(match self.reason {
                Some(ReasonName::NotConnected) => BadReason::NotConnected,
                Some(ReasonName::CommFailure) => BadReason::CommFailure,
                None | Some(ReasonName::DeviceFailure) => BadReason::DeviceFailure,
                Some(ReasonName::ConfigError) => BadReason::ConfigError,
                Some(ReasonName::OutOfService) => BadReason::OutOfService,
            }),
        };
        Ok(Reading {
            tag: self.tag,
            // A Good reading with no value has nothing to say; the model keeps the last.
            value,
            quality,
            source_time,
        })
    }
}

/// A value as it appears in a log line: at most 64 characters of it.
fn short(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// A tag as `configure` describes it to the driver.
#[derive(Serialize)]
pub struct TagOut<'a> {
    pub tag: u32,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub data_type: DataType,
    pub address: &'a str,
    pub writable: bool,
}

/// A request from uaedge, one line each.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request<'a> {
    Configure {
        id: u64,
        device: &'a str,
        poll_interval_ms: u64,
        tags: Vec<TagOut<'a>>,
    },
    Read {
        id: u64,
    },
    Write {
        id: u64,
        tag: u32,
        value: ValueJson<'a>,
    },
}

impl Request<'_> {
    /// The request as one line, newline included.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these structs cannot fail: string keys, no maps of other keys, and
        // ValueJson writes non-finite floats as text.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uaedge_driver::{Timestamp, Value};

    #[test]
    fn every_message_decodes_from_its_line() {
        assert_eq!(
            decode(br#"{"type":"hello","protocol":1,"driver":"s7","write":true,"future":[1]}"#),
            Ok(Message::Hello(Hello {
                protocol: 1,
                driver: Some("s7".into()),
                version: None,
                read: true,
                write: true,
                push: false,
            }))
        );
        assert_eq!(
            decode(br#"{"type":"ok","id":1,"tag_errors":[{"tag":2,"message":"no DB9"}]}"#),
            Ok(Message::Ok {
                id: 1,
                tag_errors: vec![TagError {
                    tag: 2,
                    message: "no DB9".into()
                }]
            })
        );
        assert_eq!(
            decode(br#"{"type":"error","id":4,"message":"refused","kind":"not_writable"}"#),
            Ok(Message::Error {
                id: 4,
                kind: ErrorKind::NotWritable,
                message: "refused".into()
            })
        );
        let Ok(Message::Readings { id: 2, readings }) = decode(
            br#"{"type":"readings","id":2,"readings":[{"tag":0,"value":1.5},{"tag":1,"quality":"bad","reason":"not_connected","error":"gone"}]}"#,
        ) else {
            panic!("readings did not decode");
        };
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[1].quality, QualityName::Bad);
        assert!(matches!(
            decode(br#"{"type":"data","readings":[]}"#),
            Ok(Message::Data { .. })
        ));
    }

    #[test]
    fn lines_that_are_not_messages_say_why() {
        for (line, why) in [
            (&b"hello world"[..], "not a protocol message"),
            (b"{\"id\":1}", "missing field `type`"),
            (b"{\"type\":\"ok\"}", "`ok` without `id`"),
            (b"{\"type\":\"readings\",\"id\":1}", "without `readings`"),
            (b"{\"type\":\"hello\"}", "without `protocol`"),
            (b"{\"type\":\"shout\"}", "unknown message type `shout`"),
            (
                b"{\"type\":\"data\",\"readings\":[{\"value\":1}]}",
                "missing field `tag`",
            ),
            (
                b"{\"type\":\"data\",\"readings\":[{\"tag\":0,\"quality\":\"meh\"}]}",
                "unknown variant `meh`",
            ),
            (b"{\"type\":\"ok\",\"id\":-1}", "invalid value"),
            (b"[1,2]", "not a protocol message"),
        ] {
            let e = decode(line).expect_err(why).to_string();
            assert!(e.contains(why), "{e} (wanted {why})");
        }
    }

    #[test]
    fn readings_take_the_tags_type_or_say_why_not() {
        let raw = |v: serde_json::Value| RawReading {
            tag: 0,
            value: v,
            quality: QualityName::Good,
            reason: None,
            time: None,
            error: None,
        };
        let r = raw(300.into()).to_reading(DataType::UInt16).expect("fits");
        assert_eq!(r.value, Some(Value::UInt16(300)));
        assert_eq!(r.quality, Quality::Good);
        let e = raw(300.into())
            .to_reading(DataType::UInt8)
            .expect_err("too big");
        assert_eq!(
            e.to_string(),
            "value 300 does not fit the tag's type: 300 does not fit uint8"
        );
        assert!(raw("x".repeat(100).into())
            .to_reading(DataType::Int32)
            .expect_err("text")
            .to_string()
            .contains('…'));
        let mut timed = raw(true.into());
        timed.time = Some("2026-12-07T10:00:00.25Z".into());
        let r = timed.to_reading(DataType::Boolean).expect("time");
        assert_eq!(r.source_time, Some(Timestamp(1_796_637_600_250_000)));
        timed.time = Some("today".into());
        assert!(timed.to_reading(DataType::Boolean).is_err());
        let mut bad = raw(serde_json::Value::Null);
        bad.quality = QualityName::Bad;
        let r = bad.to_reading(DataType::Double).expect("bad");
        assert_eq!(
            (r.value, r.quality),
            (None, Quality::Bad(BadReason::DeviceFailure))
        );
    }

    #[test]
    fn requests_are_one_line_each() {
        let tags = vec![TagOut {
            tag: 0,
            name: "a\nb",
            data_type: DataType::Float,
            address: "DB1.DBD4",
            writable: true,
        }];
        let line = Request::Configure {
            id: 1,
            device: "press",
            poll_interval_ms: 1000,
            tags,
        }
        .encode();
        assert_eq!(
            String::from_utf8_lossy(&line),
            "{\"type\":\"configure\",\"id\":1,\"device\":\"press\",\"poll_interval_ms\":1000,\"tags\":[{\"tag\":0,\"name\":\"a\\nb\",\"type\":\"float32\",\"address\":\"DB1.DBD4\",\"writable\":true}]}\n"
        );
        let v = Some(Value::Double(f64::NAN));
        let line = Request::Write {
            id: 3,
            tag: 0,
            value: ValueJson(&v),
        }
        .encode();
        assert_eq!(
            line,
            b"{\"type\":\"write\",\"id\":3,\"tag\":0,\"value\":\"NaN\"}\n"
        );
        assert_eq!(
            Request::Read { id: 2 }.encode(),
            b"{\"type\":\"read\",\"id\":2}\n"
        );
    }
}
