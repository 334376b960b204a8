//! What a simulated device of this driver keeps per tag (see `per_tag`).

#[path = "../../sim/tests/support/per_tag.rs"]
mod per_tag;

use std::sync::Arc;

use uaedge_driver::{DataType, DriverFactory, TagSpec};
use uaedge_profinet_sim::{
    ProfinetAddress, ProfinetSimDriver, ProfinetSimFactory, ProfinetSimOptions, ProfinetTagOptions,
};
use uaedge_sim::SignalKind;

const TAGS: usize = 10_000;

/// Inputs counting, 100 `uint32` to a subslot.
fn counter_tags() -> Vec<TagSpec<ProfinetAddress>> {
    let options = ProfinetTagOptions {
        signal: Some(SignalKind::Counter),
        ..Default::default()
    };
    per_tag::counter_tags(TAGS, |i| {
        ProfinetSimFactory
            .parse_address(
                &format!("in:{}.1:{}", 1 + i / 100, 4 * (i % 100)),
                DataType::UInt32,
                &options,
            )
            .expect("address")
    })
}

// One test in this binary, so no other test allocates while it counts.
#[test]
fn a_counter_tag_costs_few_bytes_and_no_allocation_of_its_own() {
    per_tag::check_driver("ProfinetSimDriver", counter_tags(), |info, tags, clock| {
        let options = ProfinetSimOptions {
            station: "sim1".into(),
            seed: 0,
            sample_period: None,
            modules: Vec::new(),
            faults: Vec::new(),
        };
        ProfinetSimDriver::new(info, options, tags, Arc::new(clock)).expect("driver")
    });
}
