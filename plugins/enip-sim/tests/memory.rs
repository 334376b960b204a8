//! What a simulated device of this driver keeps per tag (see `per_tag`).

#[path = "../../sim/tests/support/per_tag.rs"]
mod per_tag;

use std::sync::Arc;

use uaedge_driver::{DataType, DriverFactory, TagSpec};
use uaedge_enip_sim::{EnipAddress, EnipSimDriver, EnipSimFactory, EnipSimOptions, EnipTagOptions};
use uaedge_sim::SignalKind;

const TAGS: usize = 10_000;

/// Logix tags `Tag_<i>`, counting.
fn counter_tags() -> Vec<TagSpec<EnipAddress>> {
    let options = EnipTagOptions {
        signal: Some(SignalKind::Counter),
        ..Default::default()
    };
    per_tag::counter_tags(TAGS, |i| {
        EnipSimFactory
            .parse_address(&format!("Tag_{i}"), DataType::UInt32, &options)
            .expect("address")
    })
}

// One test in this binary, so no other test allocates while it counts.
#[test]
fn a_counter_tag_costs_few_bytes_and_no_allocation_of_its_own() {
    per_tag::check_driver("EnipSimDriver", counter_tags(), |info, tags, clock| {
        let options = EnipSimOptions {
            host: None,
            slot: 0,
            seed: 0,
            sample_period: None,
            faults: Vec::new(),
        };
        EnipSimDriver::new(info, options, tags, Arc::new(clock)).expect("driver")
    });
}
