//! The simulated PROFINET IO device as a [`Driver`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;
use uaedge_driver::{
    async_trait, BadReason, DeviceInfo, Driver, LinkError, Reading, TagSpec, Value, WriteError,
};
use uaedge_sim::image::{decode, encode, Codec};
use uaedge_sim::{Clock, SimDevice, TagSample};

use crate::{sim_tags, Area, Iops, ProfinetAddress, ProfinetSimOptions};

/// Where one tag's bytes are.
#[derive(Debug)]
struct Placement {
    image: usize,
    offset: usize,
    codec: Codec,
    /// Index into the subslots; `None` for record data, which has no IOPS.
    subslot: Option<usize>,
}

pub struct ProfinetSimDriver {
    sim: SimDevice,
    clock: Arc<dyn Clock>,
    station: String,
    placements: Vec<Placement>,
    image_keys: Vec<(Area, u16, u16)>,
    images: Vec<Vec<u8>>,
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
        let mut subslots: Vec<(u16, u16)> = options
            .modules
            .iter()
            .map(|m| (m.slot, m.subslot))
            .collect();
        for t in &tags {
            let loc = &t.address.location;
            let size = sizes.entry((loc.area, loc.slot, loc.subslot)).or_insert(0);
            *size = (*size).max(usize::try_from(loc.end()).unwrap_or(usize::MAX));
            if !subslots.contains(&(loc.slot, loc.subslot)) {
                subslots.push((loc.slot, loc.subslot));
            }
        }
        let keys: Vec<(Area, u16, u16)> = sizes.keys().copied().collect();
        let images: Vec<Vec<u8>> = sizes.values().map(|n| vec![0u8; *n]).collect();
        let placements = tags
            .iter()
            .map(|t| {
                let loc = &t.address.location;
                Placement {
                    image: keys
                        .iter()
                        .position(|k| *k == (loc.area, loc.slot, loc.subslot))
                        .unwrap_or(0),
                    offset: loc.offset as usize,
                    codec: loc.codec,
                    subslot: match loc.area {
                        Area::Record(_) => None,
                        _ => subslots.iter().position(|s| *s == (loc.slot, loc.subslot)),
                    },
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
        let period = options
            .sample_period
            .map(|d| d.get())
            .unwrap_or(device.poll_interval);
        let sim = SimDevice::new(
            device.name.clone(),
            options.seed,
            period,
            clock.now(),
            sim_tags(&tags),
            &options.faults,
        )?;
        info!(device = %device.name, station = %options.station, tags = tags.len(), subslots = subslots.len(), "simulated PROFINET device built");
        Ok(ProfinetSimDriver {
            sim,
            clock,
            station: options.station,
            placements,
            image_keys: keys,
            images,
            subslot_bad: vec![false; subslot_fixed_bad.len()],
            subslot_fixed_bad,
        })
    }

    /// The bytes of one subslot's input, output or record data, as the device holds them.
    pub fn image(&self, area: Area, slot: u16, subslot: u16) -> Option<&[u8]> {
        let i = self
            .image_keys
            .iter()
            .position(|k| *k == (area, slot, subslot))?;
        self.images.get(i).map(Vec::as_slice)
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
            placements,
            images,
            subslot_fixed_bad,
            subslot_bad,
            ..
        } = self;
        sim.advance(clock.now(), |step| {
            // Lay every step, emitted or not, so bytes nobody drives any more hold exactly
            // what they would have held had every step been read.
            for (p, sample) in placements.iter().zip(step.samples) {
                if let TagSample::Driven(v) = sample {
                    if let Some(buf) = images.get_mut(p.image).and_then(|b| b.get_mut(p.offset..)) {
                        encode(p.codec, v, buf);
                    }
                }
            }
            if !step.emit {
                return;
            }
            subslot_bad.copy_from_slice(subslot_fixed_bad);
            for (p, sample) in placements.iter().zip(step.samples) {
                if let (Some(s), TagSample::Bad(BadReason::DeviceFailure)) = (p.subslot, sample) {
                    if let Some(bad) = subslot_bad.get_mut(s) {
                        *bad = true;
                    }
                }
            }
            for (i, (p, sample)) in placements.iter().zip(step.samples).enumerate() {
                let tag = u32::try_from(i).unwrap_or(u32::MAX);
                let iops_bad = p
                    .subslot
                    .and_then(|s| subslot_bad.get(s).copied())
                    .unwrap_or(false);
                let reading = match sample {
                    _ if iops_bad => Reading::bad(tag, BadReason::DeviceFailure),
                    TagSample::Bad(reason) => Reading::bad(tag, *reason),
                    _ => match images
                        .get(p.image)
                        .and_then(|b| b.get(p.offset..))
                        .and_then(|b| decode(p.codec, b))
                    {
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
