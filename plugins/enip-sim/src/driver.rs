//! The simulated adapter/controller as a [`Driver`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{debug, info};
use uaedge_driver::{
    async_trait, BadReason, DataType, DeviceInfo, Driver, LinkError, Reading, TagSpec, Value,
    WriteError,
};
use uaedge_sim::image::Images;
use uaedge_sim::{Clock, SimDevice, TagSample};

use crate::{EnipAddress, EnipSimOptions, LOGIX_STRING_CAPACITY};

/// CIP general status codes the simulator answers with.
pub const STATUS_SUCCESS: u8 = 0x00;
pub const STATUS_RESOURCE_UNAVAILABLE: u8 = 0x02;
pub const STATUS_INVALID_ATTRIBUTE_VALUE: u8 = 0x09;
pub const STATUS_DEVICE_STATE_CONFLICT: u8 = 0x10;
pub const STATUS_TOO_MUCH_DATA: u8 = 0x15;

fn status_of(reason: BadReason) -> u8 {
    match reason {
        BadReason::DeviceFailure => STATUS_DEVICE_STATE_CONFLICT,
        _ => STATUS_RESOURCE_UNAVAILABLE,
    }
}

/// The tag's name is the device's ([`SimDevice::tag_name`]), not kept twice.
#[derive(Debug)]
struct Placement {
    native: DataType,
    model: DataType,
    writable: bool,
}

pub struct EnipSimDriver {
    sim: SimDevice,
    clock: Arc<dyn Clock>,
    placements: Vec<Placement>,
    /// Per CIP attribute or Logix tag, keyed by the index of its
    /// [`Target::image_key`](crate::Target::image_key) in `keys`.
    images: Images<u32>,
    keys: Keys,
    /// The last CIP general status of each tag, so a change is logged once.
    status: Vec<u8>,
}

/// The image keys, sorted and end to end in one string: a controller of 100,000 Logix
/// tags has as many images, and a `String` each would be an allocation each.
#[derive(Debug)]
struct Keys {
    text: String,
    ends: Vec<u32>,
}

impl Keys {
    fn new(keys: &[String]) -> Result<Keys, String> {
        let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut text = String::with_capacity(sorted.iter().map(|k| k.len()).sum());
        let mut ends = Vec::with_capacity(sorted.len());
        for k in sorted {
            text.push_str(k);
            ends.push(
                u32::try_from(text.len())
                    .map_err(|_| "the tags' addresses add up to more than 4 GiB".to_string())?,
            );
        }
        Ok(Keys { text, ends })
    }

    fn get(&self, i: usize) -> Option<&str> {
        let from = match i.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        self.text.get(from as usize..*self.ends.get(i)? as usize)
    }

    /// The index of `key`.
    fn find(&self, key: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid)?.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return u32::try_from(mid).ok(),
            }
        }
        None
    }
}

impl std::fmt::Debug for EnipSimDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnipSimDriver")
            .field("device", &self.sim.name())
            .finish_non_exhaustive()
    }
}

impl EnipSimDriver {
    /// Builds the device; `clock` is the wall clock in service and a manual one in tests.
    pub fn new(
        device: &DeviceInfo,
        options: EnipSimOptions,
        tags: Vec<TagSpec<EnipAddress>>,
        clock: Arc<dyn Clock>,
    ) -> Result<EnipSimDriver, String> {
        let tag_keys: Vec<String> = tags.iter().map(|t| t.address.target.image_key()).collect();
        let keys = Keys::new(&tag_keys)?;
        let ids: Vec<u32> = tag_keys.iter().map(|k| keys.find(k).unwrap_or(0)).collect();
        drop(tag_keys);
        let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
        for (t, id) in tags.iter().zip(&ids) {
            // An undeclared parent of a bit tag is taken as a DINT (a LINT past bit 31), the
            // usual home of status bits.
            let parent = match t.address.target {
                crate::Target::Symbol { bit: Some(b), .. } if b < 32 => 4,
                crate::Target::Symbol { bit: Some(_), .. } => 8,
                _ => 0,
            };
            let size = sizes.entry(*id).or_insert(0);
            *size = (*size).max(parent);
        }
        let images = Images::new(
            sizes,
            tags.iter()
                .zip(&ids)
                .map(|(t, id)| {
                    let (offset, _) = t.address.target.position();
                    (*id, offset, t.address.codec)
                })
                .collect(),
        );
        let placements = tags
            .iter()
            .map(|t| Placement {
                native: t.address.native,
                model: t.data_type,
                writable: t.writable,
            })
            .collect();
        let sim = uaedge_sim::start_device(
            device,
            options.seed,
            options.sample_period,
            &options.faults,
            &tags,
            &*clock,
        )?;
        info!(
            device = %device.name,
            host = options.host.as_deref().unwrap_or("-"),
            slot = options.slot,
            tags = tags.len(),
            "simulated EtherNet/IP device built"
        );
        Ok(EnipSimDriver {
            sim,
            clock,
            status: vec![STATUS_SUCCESS; tags.len()],
            placements,
            images,
            keys,
        })
    }

    /// The bytes of a CIP attribute (`@4/100/3`) or a Logix tag, as the device holds them.
    pub fn image(&self, key: &str) -> Option<&[u8]> {
        self.images
            .image(&self.keys.find(&key.to_ascii_lowercase())?)
    }

    /// The CIP general status the last read of a tag got.
    pub fn general_status(&self, tag: u32) -> Option<u8> {
        self.status.get(usize::try_from(tag).ok()?).copied()
    }
}

#[async_trait]
impl Driver for EnipSimDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        self.sim.connect(self.clock.now())
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let EnipSimDriver {
            sim,
            clock,
            placements,
            images,
            status,
            ..
        } = self;
        let device = sim.name().to_string();
        sim.advance(clock.now(), |step| {
            // Every step is laid, emitted or not, so shared bytes are the same whatever the
            // read boundaries were.
            images.lay(step.samples);
            if !step.emit {
                return;
            }
            for (i, (p, sample)) in placements.iter().zip(step.samples).enumerate() {
                let tag = u32::try_from(i).unwrap_or(u32::MAX);
                let (reading, code) = match sample {
                    TagSample::Bad(reason) => (Reading::bad(tag, *reason), status_of(*reason)),
                    _ => {
                        match images.value(i).and_then(|v| v.convert(p.model).ok()) {
                            Some(v) => (Reading::good(tag, v), STATUS_SUCCESS),
                            None => (Reading::bad(tag, BadReason::ConfigError), STATUS_INVALID_ATTRIBUTE_VALUE),
                        }
                    }
                };
                if let Some(last) = status.get_mut(i) {
                    if *last != code {
                        *last = code;
                        debug!(device = %device, tag = %step.tag_name(i), cip_status = format_args!("{code:#04x}"), "CIP general status changed");
                    }
                }
                out.push(reading.at(step.time));
            }
        })
    }

    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError> {
        let index = usize::try_from(tag).unwrap_or(usize::MAX);
        let p = self
            .placements
            .get(index)
            .ok_or_else(|| WriteError::Rejected(format!("no tag with index {tag}")))?;
        if !p.writable {
            return Err(WriteError::NotWritable);
        }
        if value.data_type() != p.model {
            return Err(WriteError::TypeMismatch(format!(
                "{} is {}, got {}",
                self.sim.tag_name(index),
                p.model,
                value.data_type()
            )));
        }
        let native = value.convert(p.native).map_err(|e| {
            WriteError::Rejected(format!(
                "CIP general status {STATUS_INVALID_ATTRIBUTE_VALUE:#04x} (invalid attribute value): {e}"
            ))
        })?;
        if let Value::String(s) = &native {
            if s.len() > LOGIX_STRING_CAPACITY {
                return Err(WriteError::Rejected(format!(
                    "CIP general status {STATUS_TOO_MUCH_DATA:#04x} (too much data): {} bytes, a STRING holds {LOGIX_STRING_CAPACITY}",
                    s.len()
                )));
            }
        }
        self.sim.write(self.clock.now(), tag, native).map_err(|e| match e {
            WriteError::Rejected(why) => WriteError::Rejected(format!(
                "CIP general status {STATUS_RESOURCE_UNAVAILABLE:#04x} (resource unavailable): {why}"
            )),
            other => other,
        })
    }

    async fn disconnect(&mut self) {
        self.sim.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn keys_find_each_key_once_and_nothing_else() {
        let given: Vec<String> = ["tag_10", "@4/100/3", "tag_2", "tag_10", ""]
            .map(String::from)
            .to_vec();
        let keys = Keys::new(&given).expect("keys");
        assert_eq!(keys.ends.len(), 4);
        let found: Vec<Option<u32>> = ["", "@4/100/3", "tag_10", "tag_2"]
            .iter()
            .map(|k| keys.find(k))
            .collect();
        assert_eq!(found, [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(keys.find("tag_1"), None);
        assert_eq!(keys.find("tag_3"), None);
        assert_eq!(keys.get(4), None);
    }
}
