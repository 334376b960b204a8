//! One uaedge reading another over OPC UA at plant scale: 10,000 counters changing every
//! 100 ms delivered one by one, in order, for a minute, over one session.
//!
//! Every counter of the upstream's simulated devices steps by one every 100 ms, so a value
//! that is missing, repeated or out of order downstream is a fault the checker counts. The
//! upstream's own session count is read through the same chain: a third downstream device
//! on the same endpoint reads `Server/ServerDiagnostics/ServerDiagnosticsSummary` (and so
//! shares the session it counts).

mod chain_support;
mod common;
mod opcua_support;

use std::time::{Duration, Instant};

use chain_support::{downstream, flowing, reconnects, upstream_devices, value, watch};
use opcua_support::Edge;
use uaedge::config::Config;
use uaedge::runtime::Runtime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_counters_at_100ms_arrive_one_by_one_over_one_session_for_a_minute() {
    chain_support::log_warnings();
    let edge = Edge::start(
        chain_support::UPSTREAM_OPCUA,
        &upstream_devices(2, 5_000, "100ms"),
    )
    .await;
    let pki = tempfile::tempdir().expect("pki");
    let text = downstream(&edge.url, pki.path(), 2, 5_000);
    let source = watch(&edge.runtime, "sim");
    let down = Runtime::start(Config::parse("down.yaml", &text).expect("config"));
    let seen = watch(&down, "up");
    flowing(&down, &seen, Duration::from_secs(60)).await;
    let start_values = seen.lock().values;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    {
        let s = seen.lock();
        let up = source.lock();
        let rate = (s.values - start_values) as f64 / started.elapsed().as_secs_f64();
        let lost = s.lost_from(&up);
        eprintln!(
            "chain: {rate:.0} values/s downstream; lost {lost} (skipped at the source {}), repeated {}, backwards {}, sessions {}",
            up.missing(), s.repeated, s.backwards, s.max_sessions
        );
        assert_eq!(
            (lost, s.repeated, s.backwards),
            (0, 0, 0),
            "values lost, repeated, out of order"
        );
        // 10,000 tags × 10 a second, give or take the start and the machine's load.
        assert!(rate > 50_000.0, "{rate:.0} values/s");
        assert_eq!(
            s.max_sessions, 1,
            "one session on the upstream for three devices"
        );
    }
    assert_eq!(value(&down, "diag/sessions"), Some(1));
    assert!(reconnects(&down) <= 1, "{} reconnects", reconnects(&down));
    down.shutdown().await.expect("downstream stops");
    edge.stop().await;
}
