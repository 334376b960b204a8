//! One uaedge reading another over OPC UA at plant scale: 10,000 counters changing every
//! 100 ms delivered one by one, in order, for a minute over one session; a network break
//! that costs no value; upstream restarts that never leave a session behind.
//!
//! Every counter of the upstream's simulated devices steps by one every 100 ms, so a value
//! that is missing, repeated or out of order downstream is a fault the checker counts. The
//! upstream's own session count is read through the same chain: a third downstream device
//! on the same endpoint reads `Server/ServerDiagnostics/ServerDiagnosticsSummary` (and so
//! shares the session it counts).

mod common;
mod opcua_support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::eventually;
use opcua_support::Edge;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use uaedge::config::Config;
use uaedge::model::TagId;
use uaedge::runtime::{ModelEvent, Runtime};
use uaedge_driver::{Quality, Value};

/// `devices` enip-sim devices of `tags` counters each, stepping every `period`.
fn upstream_devices(devices: usize, tags: usize, period: &str) -> String {
    let mut y = String::new();
    for d in 1..=devices {
        let _ = write!(
            y,
            "  - name: sim{d}\n    driver: enip-sim\n    poll_interval: {period}\n    options: {{ seed: {d} }}\n    tags:\n"
        );
        for t in 0..tags {
            let _ = writeln!(
                y,
                "      - {{ name: t{t}, type: uint32, address: \"Tag_{t}\", options: {{ signal: counter }} }}"
            );
        }
    }
    y
}

/// The downstream config: one `opcua-client` device per upstream device, and `diag`
/// reading the upstream's session counts, all through `url`.
fn downstream(url: &str, pki: &std::path::Path, devices: usize, tags: usize) -> String {
    let options = format!(
        "{{ endpoint: \"{url}\", pki_dir: \"{}\", publishing_interval: 100ms, request_timeout: 2s, buffer: 1000000 }}",
        pki.display()
    );
    let mut y = String::from("node: { name: down }\ndevices:\n");
    for d in 1..=devices {
        let _ = write!(
            y,
            "  - name: up{d}\n    driver: opcua-client\n    poll_interval: 100ms\n    reconnect: {{ min: 100ms, max: 1s }}\n    options: {options}\n    tags:\n"
        );
        for t in 0..tags {
            let _ = writeln!(
                y,
                "      - {{ name: t{t}, type: uint32, address: \"nsu=urn:uaedge:test;s=sim{d}/t{t}\" }}"
            );
        }
    }
    let _ = write!(
        y,
        "  - name: diag\n    driver: opcua-client\n    poll_interval: 100ms\n    reconnect: {{ min: 100ms, max: 1s }}\n    options: {options}\n    tags:\n      \
         - {{ name: sessions, type: uint32, address: \"i=2277\" }}\n      \
         - {{ name: sessions_created, type: uint32, address: \"i=2278\" }}\n"
    );
    y
}

/// What the downstream saw of the counters.
#[derive(Default, Debug)]
struct Seen {
    /// Each tag's last Good value.
    last: Vec<Option<u32>>,
    values: u64,
    missing: u64,
    repeated: u64,
    backwards: u64,
    /// The largest upstream session count seen.
    max_sessions: u32,
}

impl Seen {
    fn counters_clean(&self) -> bool {
        self.missing == 0 && self.repeated == 0 && self.backwards == 0
    }
}

/// Follows the downstream's model events into `seen`; counter tags are those whose device
/// name starts with `up`.
fn watch(rt: &Runtime) -> Arc<Mutex<Seen>> {
    let table = rt.handle().table();
    let seen = Arc::new(Mutex::new(Seen {
        last: vec![None; table.tags().len()],
        ..Seen::default()
    }));
    let counter: Vec<bool> = table
        .tags()
        .iter()
        .map(|t| t.path.device.starts_with("up"))
        .collect();
    let sessions = table.find("diag/sessions");
    let mut events = rt.handle().subscribe(64);
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let ModelEvent::Samples(batch) = event else {
                continue;
            };
            let mut s = out.lock();
            for sample in batch.iter() {
                let (Some(Value::UInt32(v)), Quality::Good) = (&sample.value, sample.quality)
                else {
                    continue;
                };
                if Some(sample.tag) == sessions {
                    s.max_sessions = s.max_sessions.max(*v);
                    continue;
                }
                let i = sample.tag.index();
                if !counter.get(i).copied().unwrap_or(false) {
                    continue;
                }
                s.values += 1;
                match s.last[i] {
                    Some(last) if *v == last.wrapping_add(1) => {}
                    Some(last) if *v == last => s.repeated += 1,
                    Some(last) if *v > last => s.missing += u64::from(*v - last - 1),
                    Some(_) => s.backwards += 1,
                    None => {}
                }
                s.last[i] = Some(*v);
            }
        }
    });
    seen
}

fn value(rt: &Runtime, path: &str) -> Option<u32> {
    let table = rt.handle().table();
    let state = table.state(table.find(path)?)?;
    match (state.value, state.quality) {
        (Some(Value::UInt32(v)), Quality::Good) => Some(v),
        _ => None,
    }
}

fn reconnects(rt: &Runtime) -> u64 {
    let table = rt.handle().table();
    table
        .devices()
        .iter()
        .filter_map(|d| table.device_state(d.id))
        .map(|s| s.reconnects)
        .sum()
}

/// Waits until every counter of the downstream is Good and has moved at least once.
async fn flowing(rt: &Runtime, seen: &Arc<Mutex<Seen>>, limit: Duration) {
    let start: Vec<Option<u32>> = seen.lock().last.clone();
    let table = rt.handle().table();
    let counters: Vec<TagId> = table
        .tags()
        .iter()
        .filter(|t| t.path.device.starts_with("up"))
        .map(|t| t.id)
        .collect();
    eventually(limit, "every counter Good and moving", || async {
        let s = seen.lock();
        let all = counters.iter().all(|t| {
            let i = t.index();
            s.last[i].is_some() && s.last[i] != start[i]
        }) && table.states(|st| {
            counters
                .iter()
                .all(|t| st[t.index()].quality == Quality::Good)
        });
        all.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_counters_at_100ms_arrive_one_by_one_over_one_session_for_a_minute() {
    let edge = Edge::start(
        "  endpoints: [none]\n  anonymous: read",
        &upstream_devices(2, 5_000, "100ms"),
    )
    .await;
    let pki = tempfile::tempdir().expect("pki");
    let text = downstream(&edge.url, pki.path(), 2, 5_000);
    let down = Runtime::start(Config::parse("down.yaml", &text).expect("config"));
    let seen = watch(&down);
    flowing(&down, &seen, Duration::from_secs(60)).await;
    let start_values = seen.lock().values;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    {
        let s = seen.lock();
        let rate = (s.values - start_values) as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "chain: {rate:.0} values/s downstream; missing {}, repeated {}, backwards {}, sessions {}",
            s.missing, s.repeated, s.backwards, s.max_sessions
        );
        assert!(
            s.counters_clean(),
            "missing {} repeated {} backwards {}",
            s.missing,
            s.repeated,
            s.backwards
        );
        // 10,000 tags × 10 a second, give or take the start and the machine's load.
        assert!(rate > 80_000.0, "{rate:.0} values/s");
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
    let edge = Edge::start(
        "  endpoints: [none]\n  anonymous: read",
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
    let down = Runtime::start(
        Config::parse("down.yaml", &downstream(&url, pki.path(), 2, 500)).expect("config"),
    );
    let seen = watch(&down);
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
        assert!(
            s.counters_clean(),
            "missing {} repeated {} backwards {}",
            s.missing,
            s.repeated,
            s.backwards
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
    let state = tempfile::tempdir().expect("state");
    let port = common::free_port();
    let devices = upstream_devices(2, 500, "100ms");
    let start = |state: &std::path::Path| {
        let text = format!(
            "node: {{ name: test }}\nstate_dir: {}\nopcua:\n  listen: 127.0.0.1:{port}\n  endpoints: [none]\n  anonymous: read\ndevices:\n{devices}",
            state.display()
        );
        Runtime::start(Config::parse("up.yaml", &text).expect("upstream config"))
    };
    let mut up = start(state.path());
    let pki = tempfile::tempdir().expect("pki");
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let down = Runtime::start(
        Config::parse("down.yaml", &downstream(&url, pki.path(), 2, 500)).expect("config"),
    );
    let seen = watch(&down);
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
