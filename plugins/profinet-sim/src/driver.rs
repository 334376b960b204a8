//! The simulated PROFINET IO device as a [`Driver`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;
use uaedge_driver::{
    async_trait, BadReason, DeviceInfo, Driver, LinkError, Reading, TagSpec, Value, WriteError,
};
use uaedge_sim::image::Images;
use uaedge_sim::{Clock, SimDevice, TagSample};

use crate::{Area, Iops, ProfinetAddress, ProfinetSimOptions};

pub struct ProfinetSimDriver {
    sim: SimDevice,
    clock: Arc<dyn Clock>,
    station: String,
    /// Per (area, slot, subslot).
    images: Images<(Area, u16, u16)>,
    /// Per tag: its index into the subslots; `None` for record data, which has no IOPS.
    tag_subslots: Vec<Option<u32>>,
    /// Subslots with a module declared `iops: bad`.
    subslot_fixed_bad: Vec<bool>,
    /// Scratch for the per-step IOPS, kept to avoid allocating on every step.
    subslot_bad: Vec<bool>,
}

impl std::fmt::Debug for ProfinetSimDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfinetSimDriver")
            .field("station", &self.station)
            .finish_non_exhaustive()
    }
}

impl ProfinetSimDriver {
    /// Builds the device; `clock` is the wall clock in service and a manual one in tests.
    pub fn new(
        device: &DeviceInfo,
        options: ProfinetSimOptions,
        tags: Vec<TagSpec<ProfinetAddress>>,
        clock: Arc<dyn Clock>,
    ) -> Result<ProfinetSimDriver, String> {
        // Images per (area, slot, subslot): declared module sizes, else as far as tags reach.
        let mut sizes: BTreeMap<(Area, u16, u16), usize> = BTreeMap::new();
        for m in &options.modules {
            sizes.insert((Area::Input, m.slot, m.subslot), m.input as usize);
            sizes.insert((Area::Output, m.slot, m.subslot), m.output as usize);
        }
        // Numbered in order of first appearance, modules first; indexed so a device of
        // thousands of tags is numbered in n log n, not n².
        let mut subslots: Vec<(u16, u16)> = Vec::new();
        let mut numbers: BTreeMap<(u16, u16), u32> = BTreeMap::new();
        let places = options.modules.iter().map(|m| (m.slot, m.subslot)).chain(
            tags.iter()
                .map(|t| (t.address.location.slot, t.address.location.subslot)),
        );
        for place in places {
            if let std::collections::btree_map::Entry::Vacant(e) = numbers.entry(place) {
                e.insert(u32::try_from(subslots.len()).unwrap_or(u32::MAX));
                subslots.push(place);
            }
        }
        let images = Images::new(
            sizes,
            tags.iter()
                .map(|t| {
                    let loc = &t.address.location;
                    (
                        (loc.area, loc.slot, loc.subslot),
                        loc.offset as usize,
                        loc.codec,
                    )
                })
                .collect(),
        );
        let tag_subslots = tags
            .iter()
            .map(|t| {
                let loc = &t.address.location;
                match loc.area {
                    Area::Record(_) => None,
                    _ => numbers.get(&(loc.slot, loc.subslot)).copied(),
                }
            })
            .collect();
        let subslot_fixed_bad: Vec<bool> = subslots
            .iter()
            .map(|s| {
                options
                    .modules
                    .iter()
                    .any(|m| (m.slot, m.subslot) == *s && m.iops == Iops::Bad)
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
        info!(device = %device.name, station = %options.station, tags = tags.len(), subslots = subslots.len(), "simulated PROFINET device built");
        Ok(ProfinetSimDriver {
            sim,
            clock,
            station: options.station,
            images,
            tag_subslots,
            subslot_bad: vec![false; subslot_fixed_bad.len()],
            subslot_fixed_bad,
        })
    }

    /// The bytes of one subslot's input, output or record data, as the device holds them.
    pub fn image(&self, area: Area, slot: u16, subslot: u16) -> Option<&[u8]> {
        self.images.image(&(area, slot, subslot))
    }

    pub fn station(&self) -> &str {
        &self.station
    }
}

#[async_trait]
impl Driver for ProfinetSimDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        self.sim.connect(self.clock.now())
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let ProfinetSimDriver {
            sim,
            clock,
            images,
            tag_subslots,
            subslot_fixed_bad,
            subslot_bad,
            ..
        } = self;
        sim.advance(clock.now(), |step| {
            images.lay(step.samples);
            if !step.emit {
                return;
            }
            subslot_bad.copy_from_slice(subslot_fixed_bad);
            for (subslot, sample) in tag_subslots.iter().zip(step.samples) {
                if let (Some(s), TagSample::Bad(BadReason::DeviceFailure)) = (subslot, sample) {
                    if let Some(bad) = subslot_bad.get_mut(*s as usize) {
                        *bad = true;
                    }
                }
            }
            for (i, (subslot, sample)) in tag_subslots.iter().zip(step.samples).enumerate() {
                let tag = u32::try_from(i).unwrap_or(u32::MAX);
                let iops_bad = subslot
                    .and_then(|s| subslot_bad.get(s as usize).copied())
                    .unwrap_or(false);
                let reading = match sample {
                    _ if iops_bad => Reading::bad(tag, BadReason::DeviceFailure),
                    TagSample::Bad(reason) => Reading::bad(tag, *reason),
                    _ => match images.value(i) {
                        Some(v) => Reading::good(tag, v),
                        None => Reading::bad(tag, BadReason::ConfigError),
                    },
                };
                out.push(reading.at(step.time));
            }
        })
    }

    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError> {
        self.sim.write(self.clock.now(), tag, value.clone())
    }

    async fn disconnect(&mut self) {
        self.sim.disconnect();
    }
}
