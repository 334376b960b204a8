//! The load harness (examples/loadgen.rs) end to end on tiny scenarios: uaedge with two
//! simulated devices, and two uaedges chained over OPC UA, each with a real mosquitto and
//! the harness's own Sparkplug subscriber. Checks that the report is well-formed, that
//! samples arrived and that no counter value went missing; the speed figures are printed,
//! never judged. Once built, about 10 s for the simulated devices and 20 s for the chain,
//! most of it the debug build's OPC UA client making its certificate (4–5 s).

use std::process::Command;

use serde_json::Value as Json;

/// The report's text and its JSON line, for 200 tags on 2 devices every 100 ms, 3 s
/// measured after 1 s.
fn loadgen(scenario: &str) -> (String, Json) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // `cargo run` rather than a path into target/: it rebuilds the example when stale.
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--example", "loadgen", "--"])
        .args(["--scenario", scenario, "--tags", "200", "--devices", "2"])
        .args([
            "--period",
            "100ms",
            "--duration",
            "3s",
            "--warmup",
            "1s",
            "--json",
        ])
        .arg("--uaedge-bin")
        .arg(env!("CARGO_BIN_EXE_uaedge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
    let json: Json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON line in:\n{stdout}"));
    (stdout, json)
}

/// What every run must show: samples, no counter value lost, repeated or stepping back,
/// every metric placed, and the figures.
fn check_common(stdout: &str, json: &Json) {
    for line in [
        "samples/s sustained:",
        "latency device change → MQTT delivery: p50",
        "mosquitto CPU:",
        "all 2 DBIRTHs after",
    ] {
        assert!(
            stdout.contains(line),
            "no `{line}` in the report:\n{stdout}"
        );
    }
    assert_eq!(json["edge"], "uaedge");
    assert_eq!(json["tags"], 200);
    assert_eq!(json["devices"], 2);
    let samples = json["samples"].as_u64().expect("samples");
    assert!(samples > 0, "no samples counted: {json}");
    assert_eq!(json["gaps"], 0, "counter values went missing: {json}");
    assert_eq!(json["repeats"], 0, "counter values came twice: {json}");
    assert_eq!(json["backwards"], 0, "counter values stepped back: {json}");
    assert_eq!(
        json["unknown"], 0,
        "metrics the subscriber could not place: {json}"
    );
    for key in [
        "samples_per_s",
        "p50_ms",
        "p99_ms",
        "to_edge_publish_p50_ms",
        "cpu_pct",
        "rss_peak_mb",
        "births_s",
        "flowing_s",
    ] {
        assert!(json[key].is_number(), "`{key}` is not a number: {json}");
    }
    assert!(
        json["rss_peak_mb"].as_f64() > Some(0.0),
        "no RSS read: {json}"
    );
}

#[test]
fn loadgen_reports_a_small_sim_run_without_gaps() {
    let (stdout, json) = loadgen("sim-1k");
    assert!(
        stdout.contains("[uaedge] sim-1k: 200 tags on 2 devices every 100 ms"),
        "{stdout}"
    );
    assert!(stdout.contains("uaedge CPU:"), "{stdout}");
    assert_eq!(json["scenario"], "sim-1k");
    check_common(&stdout, &json);
}

#[test]
fn loadgen_reports_a_small_opcua_chain_without_gaps() {
    let (stdout, json) = loadgen("opcua-100k");
    for line in [
        "[uaedge] opcua-100k: 200 tags on 2 devices every 100 ms",
        "chain: devices in an upstream uaedge",
        "uaedge (downstream: OPC UA client, Sparkplug) CPU:",
        "upstream uaedge (devices, OPC UA server) CPU:",
    ] {
        assert!(
            stdout.contains(line),
            "no `{line}` in the report:\n{stdout}"
        );
    }
    assert_eq!(json["scenario"], "opcua-100k");
    check_common(&stdout, &json);
    for key in ["upstream_cpu_pct", "upstream_ready_s"] {
        assert!(json[key].is_number(), "`{key}` is not a number: {json}");
    }
    assert!(
        json["upstream_rss_peak_mb"].as_f64() > Some(0.0),
        "no upstream RSS read: {json}"
    );
}
