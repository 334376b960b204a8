//! A driver program that crashes a hundred times, alone in its test binary so that the
//! descriptors and memory it looks at are the driver's alone.

mod support;

use std::time::Instant;

use support::{cycle, driver, open_fds, options, rss_kib, tag};
use uaedge_driver::{DataType, Driver, LinkErrorKind};

#[tokio::test]
async fn a_program_that_crashes_100_times_is_restarted_every_time_without_leaks() {
    let mut o = options("crash");
    o.env.insert("CRASH_AFTER".into(), "2".into());
    let mut d = driver(o, vec![tag("n", DataType::Int32, "counter", false)]);
    for _ in 0..10 {
        cycle(&mut d).await;
    }
    let (fds, rss) = (open_fds(), rss_kib());
    let start = Instant::now();
    for i in 0..100 {
        let e = cycle(&mut d).await;
        assert_eq!(e.kind, LinkErrorKind::NotConnected, "{i}: {e}");
        assert!(e.message.contains("exited"), "{i}: {e}");
    }
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    eprintln!(
        "100 crashes in {:?}: fds {fds} -> {fds_after}, RSS {rss} -> {rss_after} KiB",
        start.elapsed()
    );
    assert!(
        fds_after <= fds + 2,
        "descriptors leak: {fds} -> {fds_after}"
    );
    assert!(
        rss_after < rss + 8 * 1024,
        "RSS grew: {rss} -> {rss_after} KiB"
    );
    d.close().await;
}
