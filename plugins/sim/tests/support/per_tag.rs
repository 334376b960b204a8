//! What a simulated device keeps per tag, counted by a global allocator, for the memory tests
//! of the simulator drivers (included with `#[path]`): the issue 8 budget (100,000 tags in
//! ≤100 MB) leaves the simulator a few dozen bytes a tag.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use uaedge_driver::{DeviceInfo, TagSpec, Timestamp};
use uaedge_sim::{ManualClock, SimAddress};

struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes straight to the system allocator; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> (isize, isize) {
    (BYTES.load(Ordering::SeqCst), BLOCKS.load(Ordering::SeqCst))
}

/// `n` `uint32` tags named `t<i>` counting every step, each at the address `address(i)`:
/// one device of issue 8's 100k-tag load.
pub fn counter_tags<A>(n: usize, address: impl Fn(usize) -> A) -> Vec<TagSpec<A>> {
    (0..n)
        .map(|i| TagSpec {
            name: format!("t{i}"),
            data_type: uaedge_driver::DataType::UInt32,
            writable: false,
            address: address(i),
        })
        .collect()
}

/// Holds a driver of `tags` (one device of issue 8's 100k-tag load), and the SimDevice of
/// those tags inside it, to the budget. `build` makes the driver from the device's info,
/// the tags and a clock.
pub fn check_driver<A: SimAddress, D>(
    driver: &str,
    tags: Vec<TagSpec<A>>,
    build: impl FnOnce(&DeviceInfo, Vec<TagSpec<A>>, ManualClock) -> D,
) {
    let info = DeviceInfo {
        name: "sim1".into(),
        poll_interval: std::time::Duration::from_millis(500),
    };
    let clock = ManualClock::new(Timestamp(1_800_000_000_000_000));
    let n = tags.len();
    let sim = kept_per_tag(n, || {
        uaedge_sim::start_device(&info, 0, None, &[], &tags, &clock).expect("device")
    });
    let whole = kept_per_tag(n, || build(&info, tags, clock));
    assert_compact(driver, sim, whole);
}

/// Bytes and allocations a tag that what `build` returns holds, counted as what dropping it
/// gives back (so what `build` consumed and dropped on the way does not count). Only one
/// test may run in the binary: another one allocating meanwhile would be counted too.
fn kept_per_tag<T>(tags: usize, build: impl FnOnce() -> T) -> (f64, f64) {
    let built = build();
    let (b1, n1) = live();
    drop(built);
    let (b2, n2) = live();
    (
        (b1 - b2) as f64 / tags as f64,
        (n1 - n2) as f64 / tags as f64,
    )
}

/// Prints both figures and holds them to the budget: measured at 49 B (SimDevice) and 77–93 B
/// (whole driver) a tag, the bounds leave room for allocator rounding, not for an allocation
/// a tag.
fn assert_compact(driver: &str, sim: (f64, f64), whole: (f64, f64)) {
    println!(
        "per tag: SimDevice {:.1} B in {:.2} blocks; {driver} (incl. its SimDevice) {:.1} B in {:.2} blocks",
        sim.0, sim.1, whole.0, whole.1
    );
    assert!(sim.0 <= 64.0, "SimDevice keeps {:.1} B a tag", sim.0);
    assert!(whole.0 <= 128.0, "{driver} keeps {:.1} B a tag", whole.0);
    assert!(
        sim.1 < 0.01 && whole.1 < 0.01,
        "an allocation a tag: {:.2}, {:.2}",
        sim.1,
        whole.1
    );
}
