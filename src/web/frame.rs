//! The change stream's `tags` frame: a JSON array of `{path, value, quality, source_time}`,
//! written by hand into one buffer. A gateway of 100,000 tags a second encodes every
//! change once per distinct filter, and a profile of serde's field-by-field version put
//! 70 % of the stream's CPU in it: a path, quality or time written through `collect_str`
//! reaches serde_json's escaper once per formatter piece, and a poll's thousand samples
//! share one source time that was printed a thousand times. Here a name is checked once
//! and copied whole, a poll's time is printed once, and only the value goes through serde
//! ([`ValueJson`], the one truth of how a value is written).

use std::fmt::Write as _;

use uaedge_driver::Quality;

use crate::model::json::{Rfc3339, ValueJson};
use crate::model::{Sample, TagDef, TagTable};

/// About what one change takes in the frame, to size the buffer once.
const CHANGE_BYTES: usize = 112;

/// The frame of the `samples` whose tags `wanted` accepts; `None` when it accepts none.
pub(super) fn tags_json(
    table: &TagTable,
    samples: &[Sample],
    wanted: impl Fn(&TagDef) -> bool,
) -> Option<String> {
    let mut out: Vec<u8> = Vec::new();
    let mut time = TimeText::default();
    let mut scratch = String::new();
    for sample in samples {
        let Some(def) = table.tag(sample.tag).filter(|d| wanted(d)) else {
            continue;
        };
        if out.is_empty() {
            out.reserve(samples.len() * CHANGE_BYTES);
            out.push(b'[');
        } else {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"path\":\"");
        escaped_into(&mut out, &def.path.device);
        out.push(b'/');
        escaped_into(&mut out, &def.path.tag);
        out.extend_from_slice(b"\",\"value\":");
        serde_json::to_writer(&mut out, &ValueJson(&sample.value)).ok()?;
        out.extend_from_slice(b",\"quality\":\"");
        match sample.quality {
            Quality::Good => out.extend_from_slice(b"Good"),
            q => {
                scratch.clear();
                let _ = write!(scratch, "{q}");
                escaped_into(&mut out, &scratch);
            }
        }
        out.extend_from_slice(b"\",\"source_time\":");
        out.extend_from_slice(time.of(sample.time.as_micros()));
        out.push(b'}');
    }
    if out.is_empty() {
        return None;
    }
    out.push(b']');
    String::from_utf8(out).ok()
}

/// `s` as the inside of a JSON string: copied whole when nothing in it needs escaping (a
/// tag name nearly always), else escaped by serde_json.
fn escaped_into(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.extend_from_slice(s.as_bytes());
    } else if let Ok(quoted) = serde_json::to_string(s) {
        out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
}

/// The last source time written, as its JSON text (`null` for none): a poll's samples
/// share one.
#[derive(Default)]
struct TimeText {
    us: Option<i64>,
    text: String,
}

impl TimeText {
    fn of(&mut self, us: i64) -> &[u8] {
        if self.us != Some(us) {
            self.us = Some(us);
            self.text.clear();
            if us == 0 {
                self.text.push_str("null");
            } else {
                // RFC 3339 has nothing to escape.
                let _ = write!(self.text, "\"{}\"", Rfc3339(us));
            }
        }
        self.text.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uaedge_driver::{BadReason, DataType, Quality, Timestamp, Value};

    use super::tags_json;
    use crate::history::export::{json_value, rfc3339};
    use crate::model::{Sample, TagId, TagTable};

    #[test]
    fn the_frame_says_what_the_tags_api_says() {
        let names = ["plain/temp", "tab\there", "back\\slash", "ünï", "skipped"];
        let typed = names.map(|n| (n, DataType::Double));
        let table = TagTable::one_device("line \"1\"", &typed, |_| {});
        let t1 = Timestamp(1_796_000_000_123_456);
        let t2 = Timestamp(1_796_000_001_000_000);
        let samples = [
            (0, Some(Value::Double(21.5)), Quality::Good, t1),
            (1, Some(Value::Float(f32::NAN)), Quality::Good, t1),
            (2, None, Quality::Bad(BadReason::CommFailure), t2),
            (
                3,
                Some(Value::String("\"x\"\n".into())),
                Quality::Good,
                Timestamp(0),
            ),
            (4, Some(Value::Int32(1)), Quality::Good, t2),
            (3, Some(Value::UInt64(u64::MAX)), Quality::Good, t1),
        ]
        .map(|(tag, value, quality, time)| Sample {
            tag: TagId(tag),
            value,
            quality,
            time,
        });
        let frame = tags_json(&table, &samples, |d| &*d.path.tag != "skipped");
        let parsed: serde_json::Value =
            serde_json::from_str(frame.as_deref().unwrap_or("")).unwrap_or_default();
        let expected: Vec<_> = samples
            .iter()
            .filter(|s| s.tag != TagId(4))
            .map(|s| {
                let us = s.time.as_micros();
                json!({
                    "path": format!("line \"1\"/{}", names[s.tag.0 as usize]),
                    "value": json_value(&s.value),
                    "quality": s.quality.to_string(),
                    "source_time": (us != 0).then(|| rfc3339(us)),
                })
            })
            .collect();
        assert_eq!(parsed, serde_json::Value::Array(expected), "{frame:?}");
        assert_eq!(tags_json(&table, &samples, |_| false), None);
    }
}
