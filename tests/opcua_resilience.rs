//! One uaedge reading another over OPC UA through trouble: a 5 s network break costs no
//! value and keeps the session; ten upstream restarts never leave a session behind. The
//! counters and the session count are checked as in tests/opcua_scale.rs. New subscriptions
//! on tags that change while they are made miss no change after their first value.

mod chain_support;
mod common;
mod opcua_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chain_support::{downstream, flowing, upstream_devices, value, watch};
use common::eventually;
use opcua_support::Edge;
use tokio::net::{TcpListener, TcpStream};
use uaedge::config::Config;
use uaedge::runtime::Runtime;

/// A TCP relay the test can cut: while cut, connections are reset and new ones refused.
struct Relay {
    addr: SocketAddr,
    cut: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let (cut, _) = tokio::sync::watch::channel(false);
        let cut = Arc::new(cut);
        let flag = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *flag.borrow() {
                    drop(client);
                    continue;
                }
                let mut rx = flag.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_second_break_resumes_the_same_session_and_loses_no_value() {
    chain_support::log_warnings();
    let edge = Edge::start(
        chain_support::UPSTREAM_OPCUA,
        &upstream_devices(2, 500, "100ms"),
    )
    .await;
    let upstream: SocketAddr = edge
        .runtime
        .opcua()
        .and_then(|s| s.local_addr())
        .expect("upstream address");
    let relay = Relay::start(upstream).await;
    let pki = tempfile::tempdir().expect("pki");
    let url = format!("opc.tcp://{}/", relay.addr);
    let source = watch(&edge.runtime, "sim");
    let down = Runtime::start(
        Config::parse("down.yaml", &downstream(&url, pki.path(), 2, 500)).expect("config"),
    );
    let seen = watch(&down, "up");
    flowing(&down, &seen, Duration::from_secs(60)).await;
    let created = eventually(Duration::from_secs(10), "the session counts", || async {
        value(&down, "diag/sessions_created")
    })
    .await;

    relay.set_cut(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    relay.set_cut(false);
    // Back, and every counter has moved past the break.
    flowing(&down, &seen, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let s = seen.lock();
        let lost = s.lost_from(&source.lock());
        assert_eq!(
            (lost, s.repeated, s.backwards),
            (0, 0, 0),
            "values lost, repeated, out of order"
        );
        assert_eq!(s.max_sessions, 1);
    }
    assert_eq!(
        value(&down, "diag/sessions_created"),
        Some(created),
        "the same session carried on: no new one was created"
    );
    down.shutdown().await.expect("downstream stops");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_upstream_restarts_never_leave_a_session_behind() {
    chain_support::log_warnings();
    let state = tempfile::tempdir().expect("state");
    let port = common::free_port();
    let devices = upstream_devices(2, 500, "100ms");
    let start = |state: &std::path::Path| {
        let text = format!(
            "node: {{ name: test }}\nstate_dir: {}\nopcua:\n  listen: 127.0.0.1:{port}\n{}\ndevices:\n{devices}",
            state.display(),
            chain_support::UPSTREAM_OPCUA
        );
        Runtime::start(Config::parse("up.yaml", &text).expect("upstream config"))
    };
    let mut up = start(state.path());
    let pki = tempfile::tempdir().expect("pki");
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let down = Runtime::start(
        Config::parse("down.yaml", &downstream(&url, pki.path(), 2, 500)).expect("config"),
    );
    let seen = watch(&down, "up");
    flowing(&down, &seen, Duration::from_secs(90)).await;
    for restart in 1..=10 {
        up.shutdown().await.expect("upstream stops");
        up = start(state.path());
        let began = Instant::now();
        flowing(&down, &seen, Duration::from_secs(60)).await;
        eventually(Duration::from_secs(10), "one session again", || async {
            (value(&down, "diag/sessions") == Some(1)).then_some(())
        })
        .await;
        eprintln!(
            "restart {restart}: flowing again after {:?}",
            began.elapsed()
        );
    }
    assert_eq!(
        seen.lock().max_sessions,
        1,
        "never more sessions than endpoints"
    );
    down.shutdown().await.expect("downstream stops");
    up.shutdown().await.expect("upstream stops");
}

/// A client subscribing while the tags change gets, after each tag's first value, every
/// change: none falls between the value its monitored item starts with and the moment the
/// server starts sending it changes. Ten downstreams in turn, each a new session and
/// subscription on counters that step every 20 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_new_subscriptions_on_changing_tags_miss_no_change() {
    chain_support::log_warnings();
    // Queues of 10 s at 20 ms steps, as the other chain tests have at 100 ms: a loaded
    // machine's stall is not taken for a loss.
    let opcua = format!(
        "{}\n  limits: {{ max_queue_size: 500 }}",
        chain_support::UPSTREAM_OPCUA
    );
    let edge = Edge::start(&opcua, &upstream_devices(1, 2_000, "20ms")).await;
    let source = watch(&edge.runtime, "sim");
    let pki = tempfile::tempdir().expect("pki");
    let text = downstream(&edge.url, pki.path(), 1, 2_000);
    let mut failures = Vec::new();
    for round in 1..=10 {
        let down = Runtime::start(Config::parse("down.yaml", &text).expect("config"));
        let seen = watch(&down, "up");
        flowing(&down, &seen, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        {
            let s = seen.lock();
            let lost = s.lost_from(&source.lock());
            if (lost, s.repeated, s.backwards) != (0, 0, 0) {
                failures.push(format!(
                    "round {round}: lost {lost}, repeated {}, backwards {}",
                    s.repeated, s.backwards
                ));
            }
        }
        down.shutdown().await.expect("downstream stops");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    edge.stop().await;
}
