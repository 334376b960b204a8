//! The load harness (examples/loadgen.rs) end to end on a tiny scenario: uaedge with two
//! simulated devices, a real mosquitto, the harness's own Sparkplug subscriber. Checks that
//! the report is well-formed, that samples arrived and that no counter value went missing;
//! the speed figures are printed, never judged. About 10 s once built.

use std::process::Command;

use serde_json::Value as Json;

#[test]
fn loadgen_reports_a_small_sim_run_without_gaps() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // `cargo run` rather than a path into target/: it rebuilds the example when stale.
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--example", "loadgen", "--"])
        .args(["--scenario", "sim-1k", "--tags", "200", "--devices", "2"])
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");

    for line in [
        "[uaedge] sim-1k: 200 tags on 2 devices every 100 ms",
        "samples/s sustained:",
        "latency device change → MQTT delivery: p50",
        "uaedge CPU:",
        "mosquitto CPU:",
        "all 2 DBIRTHs after",
    ] {
        assert!(
            stdout.contains(line),
            "no `{line}` in the report:\n{stdout}"
        );
    }
    let json: Json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON line in:\n{stdout}"));
    assert_eq!(json["scenario"], "sim-1k");
    assert_eq!(json["edge"], "uaedge");
    assert_eq!(json["tags"], 200);
    assert_eq!(json["devices"], 2);
    let samples = json["samples"].as_u64().expect("samples");
    assert!(samples > 0, "no samples counted: {json}");
    assert_eq!(json["gaps"], 0, "counter values went missing: {json}");
    assert_eq!(
        json["unknown"], 0,
        "metrics the subscriber could not place: {json}"
    );
    for key in [
        "samples_per_s",
        "p50_ms",
        "p99_ms",
        "cpu_pct",
        "rss_peak_mb",
        "births_s",
    ] {
        assert!(json[key].is_number(), "`{key}` is not a number: {json}");
    }
    assert!(
        json["rss_peak_mb"].as_f64() > Some(0.0),
        "no RSS read: {json}"
    );
}
