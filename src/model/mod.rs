//! The unified data model: every device's tags in one table, whatever the protocol.
//!
//! Tags get dense [`TagId`]s at start, so the hot path indexes vectors instead of hashing
//! paths. Scaling and deadband live here, once, so that no driver re-implements them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use uaedge_driver::{DataType, Quality, Timestamp, Value, ValueError};

pub use uaedge_driver::json;
mod scaling;
pub use scaling::{Gain, Scaling};

/// Dense index of a tag in the [`TagTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagId(pub u32);

impl TagId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Dense index of a device, in config order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub u16);

impl DeviceId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// `device/tag`, where the tag part may hold `/` for folders (`press3/hydraulics/pressure`).
/// It names the tag everywhere: the OPC UA NodeId string, the Sparkplug metric name inside
/// its device, the store, the log.
///
/// The device part is shared by all of a device's tags and neither part has spare capacity:
/// a gateway holds one per tag, 100,000 of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagPath {
    pub device: Arc<str>,
    pub tag: Box<str>,
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.device, self.tag)
    }
}

/// One value of one tag at one time: what crosses channels, in batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub tag: TagId,
    /// `None` where no value is known (Bad quality before any good read).
    pub value: Option<Value>,
    pub quality: Quality,
    pub time: Timestamp,
}

/// Report-by-exception threshold: a new value is reported only when it moved more than this
/// from the last reported one. Quality changes are always reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    Absolute(f64),
    /// Percent of the tag's engineering range (config validation makes sure there is one).
    Percent(f64),
}

/// Everything static about a tag, fixed at config load.
///
/// Kept small (128 bytes, see the size test): one per tag for as long as the runtime runs.
/// What most tags leave out (scaling, an explicit range) is boxed, and the strings hold no
/// spare capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct TagDef {
    pub id: TagId,
    pub device: DeviceId,
    pub path: TagPath,
    /// Index of the tag within its device: the driver's index for the driver's tags;
    /// alarm tags (see [`DeviceDef::driver_tags`]) continue the count after them.
    pub local: u32,
    /// The type clients see (after scaling).
    pub data_type: DataType,
    /// The type the device holds.
    pub raw_type: DataType,
    pub units: Option<Box<str>>,
    pub description: Option<Box<str>>,
    pub scaling: Option<Box<Scaling>>,
    /// Engineering range, from `range:` or the scaling's `eng` range.
    pub range: Option<Box<[f64; 2]>>,
    pub deadband: Option<Deadband>,
    pub writable: bool,
    /// Kept by the historian (when there is one): `history: false` on the tag says no.
    pub historized: bool,
    /// The driver's address, rendered for humans (`uaedge tags`, OPC UA descriptions).
    pub address: Box<str>,
}

impl TagDef {
    /// The engineering range, where there is one.
    pub fn eng_range(&self) -> Option<[f64; 2]> {
        self.range.as_deref().copied()
    }

    /// Turns a driver's raw value into the model's value: scaling, then the model type.
    pub fn from_raw(&self, raw: &Value) -> Result<Value, ValueError> {
        match &self.scaling {
            Some(s) => {
                let x = raw.as_f64().ok_or(ValueError::TypeMismatch {
                    from: raw.data_type(),
                    to: self.data_type,
                })?;
                Value::from_f64(s.to_eng(x), self.data_type)
            }
            None => raw.convert(self.data_type),
        }
    }

    /// Turns a value written by a client into what the device takes: the model type (so a
    /// client may write an Int32 to a Double tag), inverse scaling, then the raw type.
    pub fn to_raw(&self, value: &Value) -> Result<Value, ValueError> {
        let eng = value.convert(self.data_type)?;
        match &self.scaling {
            Some(s) => {
                let x = eng.as_f64().ok_or(ValueError::TypeMismatch {
                    from: eng.data_type(),
                    to: self.raw_type,
                })?;
                Value::from_f64(s.to_raw(x), self.raw_type)
            }
            None => eng.convert(self.raw_type),
        }
    }

    fn deadband_abs(&self) -> Option<f64> {
        match self.deadband? {
            Deadband::Absolute(d) => Some(d),
            Deadband::Percent(p) => self.eng_range().map(|[lo, hi]| (hi - lo).abs() * p / 100.0),
        }
    }

    /// Whether `new` differs enough from the last reported `old` to be reported.
    pub fn exceeds_deadband(&self, old: &Value, new: &Value) -> bool {
        match (self.deadband_abs(), old.as_f64(), new.as_f64()) {
            (Some(db), Some(a), Some(b)) => (b - a).abs() > db || a.is_nan() != b.is_nan(),
            _ => old != new,
        }
    }
}

/// Everything static about a device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDef {
    pub id: DeviceId,
    pub name: String,
    pub driver: String,
    /// Its tags are `first_tag .. first_tag + tag_count`: the driver's tags in driver
    /// order, then the alarm tags of its anomaly checks.
    pub first_tag: u32,
    pub tag_count: u32,
    /// How many of its tags the driver reads (`first_tag .. first_tag + driver_tags`); the
    /// rest are alarm Booleans the router sets, which no driver reading or link loss touches.
    pub driver_tags: u32,
}

impl DeviceDef {
    pub fn tag_ids(&self) -> impl Iterator<Item = TagId> {
        (self.first_tag..self.first_tag + self.tag_count).map(TagId)
    }

    /// The tags its driver reads, without the alarm tags.
    pub fn driver_tag_ids(&self) -> impl Iterator<Item = TagId> {
        (self.first_tag..self.first_tag + self.driver_tags.min(self.tag_count)).map(TagId)
    }

    /// Whether `tag` is one of its alarm tags (after the driver's tags).
    pub fn is_alarm_tag(&self, tag: TagId) -> bool {
        tag.0 >= self.first_tag + self.driver_tags && tag.0 < self.first_tag + self.tag_count
    }
}

/// The live state of a tag: the last reported value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TagState {
    pub value: Option<Value>,
    pub quality: Quality,
    pub source_time: Timestamp,
    /// When the runtime last took a reading of this tag (OPC UA's server timestamp).
    pub server_time: Timestamp,
}

impl TagState {
    /// Takes a reported sample. A sample without a value (Bad) keeps the last good value, so
    /// clients still see what it was.
    pub fn apply(&mut self, s: &Sample, server_time: Timestamp) {
        if s.value.is_some() {
            self.value.clone_from(&s.value);
        }
        self.quality = s.quality;
        self.source_time = s.time;
        self.server_time = server_time;
    }
}

/// The live state of a device's link.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceState {
    pub connected: bool,
    pub last_error: Option<String>,
    pub reconnects: u64,
    pub samples_in: u64,
    /// Samples that passed report-by-exception.
    pub samples_out: u64,
}

/// The unified model: static definitions plus the live values every consumer reads.
pub struct TagTable {
    devices: Vec<DeviceDef>,
    tags: Vec<TagDef>,
    device_ids: HashMap<String, DeviceId>,
    /// Each device's tags (the same range of this vector as of `tags`) sorted by name, for
    /// [`TagTable::find`]: 4 bytes a tag, where a map of path strings took about 90.
    by_name: Vec<TagId>,
    state: RwLock<Vec<TagState>>,
    device_state: RwLock<Vec<DeviceState>>,
}

#[cfg(test)]
impl TagDef {
    /// A tag for tests: on device 0, historized, read-only, unscaled, no units.
    pub(crate) fn plain(id: u32, device: &str, tag: &str, data_type: DataType) -> TagDef {
        TagDef {
            id: TagId(id),
            device: DeviceId(0),
            path: TagPath {
                device: device.into(),
                tag: tag.into(),
            },
            local: id,
            data_type,
            raw_type: data_type,
            units: None,
            description: None,
            scaling: None,
            range: None,
            deadband: None,
            writable: false,
            historized: true,
            address: Box::default(),
        }
    }
}

#[cfg(test)]
impl TagTable {
    /// A table of one device with `tags` ([`TagDef::plain`]): `adjust` changes any
    /// definition before the table is built.
    pub(crate) fn one_device(
        device: &str,
        tags: &[(&str, DataType)],
        adjust: impl Fn(&mut TagDef),
    ) -> TagTable {
        let defs = tags
            .iter()
            .zip(0u32..)
            .map(|(&(name, data_type), i)| {
                let mut def = TagDef::plain(i, device, name, data_type);
                adjust(&mut def);
                def
            })
            .collect::<Vec<_>>();
        let device = DeviceDef {
            id: DeviceId(0),
            name: device.into(),
            driver: "sim".into(),
            first_tag: 0,
            tag_count: defs.len() as u32,
            driver_tags: defs.len() as u32,
        };
        TagTable::new(vec![device], defs)
    }
}

impl TagTable {
    /// Builds the table. Tags must be grouped by device in device order with dense ids; the
    /// config loader builds them that way.
    pub fn new(devices: Vec<DeviceDef>, mut tags: Vec<TagDef>) -> TagTable {
        // Built by pushing, the vector may hold up to twice the tags it has, for good.
        tags.shrink_to_fit();
        let device_ids = devices.iter().map(|d| (d.name.clone(), d.id)).collect();
        let mut by_name: Vec<TagId> = tags.iter().map(|t| t.id).collect();
        for d in &devices {
            let range = d.first_tag as usize..(d.first_tag + d.tag_count) as usize;
            if let Some(ids) = by_name.get_mut(range) {
                ids.sort_unstable_by(|a, b| {
                    let name = |id: &TagId| tags.get(id.index()).map(|t| &*t.path.tag);
                    name(a).cmp(&name(b))
                });
            }
        }
        let initial = TagState {
            quality: Quality::Bad(uaedge_driver::BadReason::NotConnected),
            ..TagState::default()
        };
        // An alarm is known from the start: no check has fired yet. Bad NotConnected would
        // tell SCADA the alarm itself cannot be trusted.
        let now = Timestamp::now();
        let normal = TagState {
            value: Some(Value::Boolean(false)),
            quality: Quality::Good,
            source_time: now,
            server_time: now,
        };
        let state = tags
            .iter()
            .map(|t| {
                let alarm = devices
                    .get(t.device.index())
                    .is_some_and(|d| d.is_alarm_tag(t.id));
                if alarm {
                    normal.clone()
                } else {
                    initial.clone()
                }
            })
            .collect();
        TagTable {
            state: RwLock::new(state),
            device_state: RwLock::new(vec![DeviceState::default(); devices.len()]),
            devices,
            tags,
            device_ids,
            by_name,
        }
    }

    pub fn devices(&self) -> &[DeviceDef] {
        &self.devices
    }

    pub fn tags(&self) -> &[TagDef] {
        &self.tags
    }

    pub fn device(&self, id: DeviceId) -> Option<&DeviceDef> {
        self.devices.get(id.index())
    }

    pub fn tag(&self, id: TagId) -> Option<&TagDef> {
        self.tags.get(id.index())
    }

    /// Looks a tag up by its `device/tag` path (device names hold no `/`).
    pub fn find(&self, path: &str) -> Option<TagId> {
        let (device, tag) = path.split_once('/')?;
        self.find_in(device, tag)
    }

    /// Looks a tag up by its device's name and its name within the device.
    pub fn find_in(&self, device: &str, tag: &str) -> Option<TagId> {
        self.find_in_device(self.device_id(device)?, tag)
    }

    /// Looks a tag up by its device and its name within the device.
    pub fn find_in_device(&self, device: DeviceId, tag: &str) -> Option<TagId> {
        let ids = self.by_name_of(device);
        let at = ids
            .binary_search_by(|id| {
                let name = self.tags.get(id.index()).map(|t| &*t.path.tag);
                name.cmp(&Some(tag))
            })
            .ok()?;
        ids.get(at).copied()
    }

    /// The ids of `device`'s tags in name order.
    fn by_name_of(&self, device: DeviceId) -> &[TagId] {
        self.device(device)
            .and_then(|d| {
                self.by_name
                    .get(d.first_tag as usize..(d.first_tag + d.tag_count) as usize)
            })
            .unwrap_or(&[])
    }

    /// The id of the device named `name`.
    pub fn device_id(&self, name: &str) -> Option<DeviceId> {
        self.device_ids.get(name).copied()
    }

    /// The tags of `device` whose names start with `prefix/` (all of them for an empty
    /// prefix), in name order: what the OPC UA server shows inside a folder.
    pub fn tags_under<'a>(
        &'a self,
        device: DeviceId,
        prefix: &str,
    ) -> impl Iterator<Item = &'a TagDef> + 'a {
        let key = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        self.tags_by_name(device, &key, None)
    }

    /// The tags of `device` whose names start with `prefix` (a string prefix) and sort after
    /// `after`, in name order: a page of a listing that survives reloads, since it resumes
    /// from a name rather than a position.
    pub fn tags_by_name<'a>(
        &'a self,
        device: DeviceId,
        prefix: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a TagDef> + 'a {
        let ids = self.by_name_of(device);
        let name = |id: &TagId| self.tags.get(id.index()).map_or("", |t| &*t.path.tag);
        // Names with a common prefix sit together in name order.
        let mut start = ids.partition_point(|id| name(id) < prefix);
        if let Some(after) = after {
            start = start.max(ids.partition_point(|id| name(id) <= after));
        }
        let prefix = prefix.to_string();
        ids.get(start..)
            .unwrap_or(&[])
            .iter()
            .filter_map(|id| self.tags.get(id.index()))
            .take_while(move |t| t.path.tag.starts_with(prefix.as_str()))
    }

    /// Looks up the tag that has `path` in this table.
    pub fn find_path(&self, path: &TagPath) -> Option<TagId> {
        self.find_in(&path.device, &path.tag)
    }

    pub fn device_tags(&self, id: DeviceId) -> &[TagDef] {
        self.device(id)
            .and_then(|d| {
                let start = d.first_tag as usize;
                self.tags.get(start..start + d.tag_count as usize)
            })
            .unwrap_or(&[])
    }

    pub fn state(&self, id: TagId) -> Option<TagState> {
        self.state.read().get(id.index()).cloned()
    }

    /// Copies the states of many tags under one lock (for a Read of thousands of nodes).
    pub fn states<R>(&self, f: impl FnOnce(&[TagState]) -> R) -> R {
        f(&self.state.read())
    }

    pub fn device_state(&self, id: DeviceId) -> Option<DeviceState> {
        self.device_state.read().get(id.index()).cloned()
    }

    pub(crate) fn update_device(&self, id: DeviceId, f: impl FnOnce(&mut DeviceState)) {
        if let Some(s) = self.device_state.write().get_mut(id.index()) {
            f(s);
        }
    }

    /// Whether `other` names the same tags with the same ids, types, units, ranges and
    /// access: what Sparkplug's births announce (aliases are ids), so a reload that keeps
    /// it needs no rebirth.
    pub fn same_tag_set(&self, other: &TagTable) -> bool {
        self.devices.len() == other.devices.len()
            && self
                .devices
                .iter()
                .zip(&other.devices)
                .all(|(a, b)| a.name == b.name && a.tag_count == b.tag_count)
            && self.tags.len() == other.tags.len()
            && self
                .tags
                .iter()
                .zip(&other.tags)
                .all(|(a, b)| a.id == b.id && same_shape(a, b))
    }

    /// Takes over the live state of `devices` from `old`, tag by path and device by name:
    /// their links keep running through a reload, so their values stay true. Alarm tags
    /// are left at their start (normal): the anomaly checks start afresh with the new table.
    pub(crate) fn carry_over(&self, old: &TagTable, devices: &HashSet<String>) {
        let old_states = old.state.read();
        let mut state = self.state.write();
        for device in self.devices.iter().filter(|d| devices.contains(&d.name)) {
            for id in device.driver_tag_ids() {
                let (Some(def), Some(slot)) =
                    (self.tags.get(id.index()), state.get_mut(id.index()))
                else {
                    continue;
                };
                if let Some(s) = old
                    .find_path(&def.path)
                    .and_then(|o| old_states.get(o.index()))
                {
                    slot.clone_from(s);
                }
            }
        }
        drop(state);
        let old_devices = old.device_state.read();
        let mut device_state = self.device_state.write();
        for (i, d) in self.devices.iter().enumerate() {
            if !devices.contains(&d.name) {
                continue;
            }
            let before = old.devices.iter().position(|o| o.name == d.name);
            if let (Some(slot), Some(s)) = (
                device_state.get_mut(i),
                before.and_then(|b| old_devices.get(b)),
            ) {
                slot.clone_from(s);
            }
        }
    }

    /// Applies samples that passed report-by-exception.
    pub(crate) fn apply(&self, samples: &[Sample], server_time: Timestamp) {
        let mut state = self.state.write();
        for s in samples {
            if let Some(t) = state.get_mut(s.tag.index()) {
                t.apply(s, server_time);
            }
        }
    }
}

/// The parts of a tag that clients see as its shape; descriptions and addresses aside.
fn same_shape(a: &TagDef, b: &TagDef) -> bool {
    a.path == b.path
        && a.data_type == b.data_type
        && a.units == b.units
        && a.range == b.range
        && a.writable == b.writable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(
        scaling: Option<Scaling>,
        deadband: Option<Deadband>,
        range: Option<[f64; 2]>,
    ) -> TagDef {
        TagDef {
            id: TagId(0),
            device: DeviceId(0),
            path: TagPath {
                device: "d".into(),
                tag: "t".into(),
            },
            local: 0,
            data_type: if scaling.is_some() {
                DataType::Double
            } else {
                DataType::Int16
            },
            raw_type: DataType::Int16,
            units: None,
            description: None,
            scaling: scaling.map(Box::new),
            range: range.map(Box::new),
            deadband,
            writable: true,
            historized: true,
            address: Box::default(),
        }
    }

    #[test]
    fn range_scaling_maps_and_inverts() {
        let t = tag(
            Some(Scaling::Range {
                raw: [0.0, 27648.0],
                eng: [0.0, 250.0],
                clamp: false,
            }),
            None,
            None,
        );
        assert_eq!(t.from_raw(&Value::Int16(13824)), Ok(Value::Double(125.0)));
        assert_eq!(t.to_raw(&Value::Double(250.0)), Ok(Value::Int16(27648)));
        // A client writing an integer to a scaled tag still reaches the device scaled.
        assert_eq!(t.to_raw(&Value::Int32(125)), Ok(Value::Int16(13824)));
    }

    #[test]
    fn gain_offset_scaling_and_out_of_range_writes() {
        let t = tag(Some(Scaling::Gain(Gain::new(0.1, -40.0))), None, None);
        assert_eq!(t.from_raw(&Value::Int16(650)), Ok(Value::Double(25.0)));
        // Served and published as the decimal, not 21.700000000000003.
        assert_eq!(t.from_raw(&Value::Int16(617)), Ok(Value::Double(21.7)));
        assert_eq!(t.to_raw(&Value::Double(21.7)), Ok(Value::Int16(617)));
        assert_eq!(t.to_raw(&Value::Double(25.0)), Ok(Value::Int16(650)));
        assert!(t.to_raw(&Value::Double(1e6)).is_err());
    }

    #[test]
    fn deadband_absolute_percent_and_none() {
        let abs = tag(None, Some(Deadband::Absolute(2.0)), None);
        assert!(!abs.exceeds_deadband(&Value::Int16(10), &Value::Int16(12)));
        assert!(abs.exceeds_deadband(&Value::Int16(10), &Value::Int16(13)));
        let pct = tag(None, Some(Deadband::Percent(1.0)), Some([0.0, 500.0]));
        assert!(!pct.exceeds_deadband(&Value::Int16(100), &Value::Int16(105)));
        assert!(pct.exceeds_deadband(&Value::Int16(100), &Value::Int16(106)));
        let none = tag(None, None, None);
        assert!(none.exceeds_deadband(&Value::Int16(1), &Value::Int16(2)));
        assert!(!none.exceeds_deadband(&Value::Int16(1), &Value::Int16(1)));
    }

    fn table(units: &str, tags: &[&str]) -> TagTable {
        let device = DeviceDef {
            id: DeviceId(0),
            name: "d".into(),
            driver: "sim".into(),
            first_tag: 0,
            tag_count: tags.len() as u32,
            driver_tags: tags.len() as u32,
        };
        let defs = tags
            .iter()
            .enumerate()
            .map(|(i, name)| TagDef {
                id: TagId(i as u32),
                local: i as u32,
                path: TagPath {
                    device: "d".into(),
                    tag: (*name).into(),
                },
                units: Some(units.into()),
                ..tag(None, None, None)
            })
            .collect();
        TagTable::new(vec![device], defs)
    }

    #[test]
    fn tag_set_and_carry_over_by_path() {
        let old = table("bar", &["a", "b"]);
        assert!(old.same_tag_set(&table("bar", &["a", "b"])));
        assert!(!old.same_tag_set(&table("psi", &["a", "b"])));
        assert!(!old.same_tag_set(&table("bar", &["b", "a"])));
        let now = Timestamp::now();
        let sample = |t: u32, v: i16| Sample {
            tag: TagId(t),
            value: Some(Value::Int16(v)),
            quality: Quality::Good,
            time: now,
        };
        old.apply(&[sample(0, 7), sample(1, 8)], now);
        old.update_device(DeviceId(0), |s| s.reconnects = 3);
        // `b` moved to id 0: values follow the path, not the id.
        let new = table("bar", &["b", "a"]);
        new.carry_over(&old, &HashSet::from(["d".to_string()]));
        assert_eq!(
            new.state(TagId(0)).and_then(|s| s.value),
            Some(Value::Int16(8))
        );
        assert_eq!(
            new.state(TagId(1)).and_then(|s| s.value),
            Some(Value::Int16(7))
        );
        assert_eq!(new.device_state(DeviceId(0)).map(|s| s.reconnects), Some(3));
        // A device not kept starts afresh.
        let fresh = table("bar", &["a", "b"]);
        fresh.carry_over(&old, &HashSet::new());
        assert_eq!(fresh.state(TagId(0)).and_then(|s| s.value), None);
    }

    #[test]
    fn find_by_path_in_any_order_and_with_folders() {
        let t = table("", &["z", "a/b", "m", "a"]);
        assert_eq!(t.find("d/z"), Some(TagId(0)));
        assert_eq!(t.find("d/a/b"), Some(TagId(1)));
        assert_eq!(t.find("d/a"), Some(TagId(3)));
        assert_eq!(t.find_in("d", "m"), Some(TagId(2)));
        assert_eq!(t.find_path(&t.tags()[1].path), Some(TagId(1)));
        for missing in ["d/q", "x/a", "d", "", "d/"] {
            assert_eq!(t.find(missing), None, "{missing}");
        }
    }

    /// One per tag, 100,000 on a big gateway: growing it is a deliberate choice.
    #[test]
    fn tag_def_stays_small() {
        assert!(
            std::mem::size_of::<TagDef>() <= 128,
            "{}",
            std::mem::size_of::<TagDef>()
        );
    }
}
