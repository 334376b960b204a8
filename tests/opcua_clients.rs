//! uaedge's OPC UA server against two more client stacks we did not write, beside asyncua
//! (tests/opcua_server.rs): open62541, through its Python bindings o6, and node-opcua. Each
//! browses from Objects to a tag, reads it and follows a counter anonymously over security
//! None; and each logs in with its own certificate and a user who may write, over every
//! current RSA security policy with SignAndEncrypt, writes a setpoint and reads it back.
//! node-opcua and asyncua both see items created disabled report their tags' values as soon
//! as they are enabled.

mod common;
mod opcua_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::eventually;
use opcua_support::{files, Edge, Scada};
use serde_json::{json, Value};

/// A simulated EtherNet/IP controller: a counter that steps every poll, a constant
/// temperature and a writable setpoint.
const CELL: &str = r#"
  - name: cell
    driver: enip-sim
    poll_interval: 100ms
    options: { seed: 1 }
    tags:
      - { name: line/count, type: uint32, address: "Count", options: { signal: counter } }
      - { name: line/temperature, type: float64, address: "Temp", units: "°C", options: { signal: constant, value: 21.5 } }
      - { name: line/setpoint, type: float32, address: "Setpoint", units: bar, writable: true, options: { signal: constant, value: 5 } }
"#;

/// The endpoints of the secure test, as the peers name them (`<Policy>,<Mode>`).
const SECURE: [(&str, &str); 3] = [
    (
        "basic256sha256_sign_encrypt",
        "Basic256Sha256,SignAndEncrypt",
    ),
    (
        "aes128_sha256_rsaoaep_sign_encrypt",
        "Aes128_Sha256_RsaOaep,SignAndEncrypt",
    ),
    (
        "aes256_sha256_rsapss_sign_encrypt",
        "Aes256_Sha256_RsaPss,SignAndEncrypt",
    ),
];

async fn wait_good(client: &mut Scada, node: &str) -> Value {
    eventually(Duration::from_secs(20), &format!("{node} Good"), || {
        let v = client.read_one(node);
        async move { (v["status"] == "Good").then_some(v) }
    })
    .await
}

/// The reference named `name` among `node`'s forward hierarchical references.
fn child(client: &mut Scada, node: &str, name: &str) -> Value {
    let answer = client.ok(json!({"op": "browse", "node": node}));
    answer["references"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["name"] == name).cloned())
        .unwrap_or_else(|| panic!("{}: no {name} under {node}: {answer}", client.name()))
}

/// The shipped config, as a plant engineer first starts it: browse to a tag, read the
/// setpoint, and follow the press's ram through a subscription.
async fn anonymous_none(start: fn() -> Scada) {
    let edge = Edge::shipped().await;
    let mut client = start();
    let pki = edge.state.path().join("client-pki").display().to_string();
    client.ok(json!({"op": "connect", "url": edge.url, "security": "None", "pki": pki}));

    // Objects/uaedge/Devices/press3/hydraulics, each an Object, then the tag in it.
    let mut at = "i=85".to_string();
    for name in ["uaedge", "Devices", "press3", "hydraulics"] {
        let found = child(&mut client, &at, name);
        assert_eq!(found["class"], "Object", "{}: {found}", client.name());
        at = found["nodeid"].as_str().unwrap_or_default().to_string();
    }
    let found = child(&mut client, &at, "pressure");
    assert_eq!(
        (found["class"].clone(), found["nodeid"].clone()),
        (
            json!("Variable"),
            json!(edge.nsu("press3/hydraulics/pressure"))
        ),
        "{}",
        client.name()
    );

    let setpoint = wait_good(&mut client, &edge.nsu("press3/pressure_setpoint")).await;
    assert_eq!(
        (setpoint["value"].as_f64(), setpoint["variant"].clone()),
        (Some(180.0), json!("Float")),
        "{}: {setpoint}",
        client.name()
    );
    assert!(setpoint["source"].as_f64().is_some(), "{setpoint}");

    // The ram moves every poll: at least three notifications, each a new value, in time
    // order.
    let ram = edge.nsu("press3/ram/position");
    let r = client.ok(json!({"op": "subscribe", "nodes": [ram], "interval": 100}));
    assert_eq!(r["results"], json!(["Good"]), "{}: {r}", client.name());
    let mut seen: Vec<Value> = Vec::new();
    eventually(Duration::from_secs(20), "three ram positions", || {
        seen.extend(
            client
                .changes(Duration::from_millis(500))
                .into_iter()
                .filter(|c| c["nodeid"] == json!(ram) && c["status"] == "Good"),
        );
        let done = seen.len() >= 3;
        async move { done.then_some(()) }
    })
    .await;
    let values: Vec<f64> = seen.iter().filter_map(|c| c["value"].as_f64()).collect();
    assert_eq!(values.len(), seen.len(), "{}: {seen:?}", client.name());
    assert!(
        values.windows(2).all(|w| w[1] != w[0]),
        "{}: {values:?}",
        client.name()
    );
    let sources: Vec<f64> = seen.iter().filter_map(|c| c["source"].as_f64()).collect();
    assert!(
        sources.len() == seen.len() && sources.windows(2).all(|w| w[1] > w[0]),
        "{}: source times {sources:?}",
        client.name()
    );
    client.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

/// A self-signed client certificate for application `uri` (DER, as the server files it)
/// and its key (PEM), made with openssl in `dir`.
fn client_certificate(dir: &Path, uri: &str) -> (PathBuf, PathBuf) {
    let (key, pem, der) = (
        dir.join("client-key.pem"),
        dir.join("client-cert.pem"),
        dir.join("client-cert.der"),
    );
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl (tests/setup.sh installs it)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (key_file, pem_file, der_file) = (
        key.display().to_string(),
        pem.display().to_string(),
        der.display().to_string(),
    );
    let san = format!("subjectAltName=URI:{uri},DNS:localhost");
    let mut req: Vec<&str> =
        "req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=uaedge-test-client"
            .split(' ')
            .collect();
    req.extend([
        "-addext",
        &san,
        "-addext",
        "extendedKeyUsage=clientAuth,serverAuth",
    ]);
    req.extend([
        "-addext",
        "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
    ]);
    req.extend(["-keyout", &key_file, "-out", &pem_file]);
    run(&req);
    run(&[
        "x509", "-in", &pem_file, "-outform", "der", "-out", &der_file,
    ]);
    (der, key)
}

async fn certificate_and_user_over_every_rsa_policy(start: fn() -> Scada) {
    let state = tempfile::tempdir().expect("state dir");
    let endpoints: Vec<&str> = SECURE.iter().map(|e| e.0).collect();
    let opcua = format!(
        "  endpoints: [{}]\n  anonymous: off\n  users:\n    - {{ name: operator, password: op-pw, write: true }}",
        endpoints.join(", ")
    );
    let edge = Edge::start_in(state, &opcua, CELL).await;
    let mut client = start();
    let uri = format!("urn:uaedge:tests:{}", client.name());
    let (cert, key) = client_certificate(edge.state.path(), &uri);
    let connect = |security: &str, password: &str| {
        json!({"op": "connect", "url": edge.url, "security": security,
            "cert": cert.display().to_string(), "key": key.display().to_string(), "uri": uri,
            "pki": edge.state.path().join("client-pki").display().to_string(),
            "user": "operator", "password": password})
    };

    // Unknown certificate: refused and filed under pki/rejected, where the operator trusts
    // it by moving it to pki/trusted. It is the one the client was given.
    let refused = client.call(connect(SECURE[0].1, "op-pw"));
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("BadCertificateUntrusted")),
        "{}: untrusted client not refused as such: {refused}",
        client.name()
    );
    let rejected = files(&edge.pki().join("rejected"));
    assert_eq!(rejected.len(), 1, "{}: {rejected:?}", client.name());
    assert_eq!(
        std::fs::read(&rejected[0]).expect("rejected certificate"),
        std::fs::read(&cert).expect("client certificate"),
        "{}",
        client.name()
    );
    let trusted = edge
        .pki()
        .join("trusted")
        .join(rejected[0].file_name().expect("name"));
    std::fs::rename(&rejected[0], trusted).expect("trust the client");

    let setpoint = edge.nsu("cell/line/setpoint");
    for ((endpoint, security), value) in SECURE.into_iter().zip([6.5, 7.25, 8.75]) {
        let what = format!("{} on {endpoint}", client.name());
        let wrong = client.call(connect(security, "wrong"));
        assert!(
            wrong["error"]
                .as_str()
                .is_some_and(|e| e.contains("BadIdentityTokenRejected")),
            "{what}: wrong password not refused as such: {wrong}"
        );
        client.ok(connect(security, "op-pw"));
        let before = wait_good(&mut client, &setpoint).await;
        assert_eq!(before["variant"], "Float", "{what}: {before}");
        assert_ne!(before["value"], json!(value), "{what}: {before}");
        assert_eq!(
            client.write(&setpoint, json!(value), "Float"),
            "Good",
            "{what}"
        );
        eventually(
            Duration::from_secs(5),
            &format!("{what}: {value} read back"),
            || {
                let v = client.read_one(&setpoint);
                async move { (v["value"] == json!(value)).then_some(()) }
            },
        )
        .await;
        client.ok(json!({"op": "disconnect"}));
    }
    edge.stop().await;
}

/// Items created disabled report nothing; enabled, each reports its tag's value at once
/// (Part 4, 5.12.1.3), even the temperature, which never changes.
async fn enabled_items_report_at_once(start: fn() -> Scada) {
    let edge = Edge::start("  endpoints: [none]\n  anonymous: read", CELL).await;
    let mut client = start();
    client.ok(json!({"op": "connect", "url": edge.url, "security": "None"}));
    let id = |path: &str| match client.name() {
        "asyncua" => edge.node(path),
        _ => edge.nsu(path),
    };
    let (temperature, count) = (id("cell/line/temperature"), id("cell/line/count"));
    wait_good(&mut client, &temperature).await;
    let r = client.ok(json!({"op": "subscribe", "nodes": [temperature, count],
        "interval": 100, "publishing": 100, "sampling": 100, "disabled": true}));
    // asyncua answers with the new items' ids, node-opcua with their status.
    let created = r["results"]
        .as_array()
        .map(|items| items.len() == 2 && items.iter().all(|i| i.is_u64() || *i == json!("Good")));
    assert_eq!(created, Some(true), "{}: {r}", client.name());
    let early = client.changes(Duration::from_secs(1));
    assert!(
        early.is_empty(),
        "{}: disabled items reported {early:?}",
        client.name()
    );

    let r = client.ok(json!({"op": "set_mode", "mode": "Reporting"}));
    assert_eq!(
        r["results"],
        json!(["Good", "Good"]),
        "{}: {r}",
        client.name()
    );
    let mut seen: Vec<Value> = Vec::new();
    eventually(Duration::from_secs(10), "both items reporting", || {
        seen.extend(client.changes(Duration::from_millis(500)));
        let both = [&temperature, &count]
            .iter()
            .all(|n| seen.iter().any(|c| c["nodeid"] == json!(n)));
        async move { both.then_some(()) }
    })
    .await;
    let first = seen.iter().find(|c| c["nodeid"] == json!(temperature));
    assert_eq!(
        first.map(|c| (c["value"].as_f64(), c["status"].clone())),
        Some((Some(21.5), json!("Good"))),
        "{}: {seen:?}",
        client.name()
    );
    client.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_items_created_disabled_report_at_once_when_enabled() {
    enabled_items_report_at_once(Scada::start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_items_created_disabled_report_at_once_when_enabled() {
    enabled_items_report_at_once(Scada::node_opcua).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o6_browses_reads_and_subscribes_anonymously_over_none() {
    anonymous_none(Scada::o6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_browses_reads_and_subscribes_anonymously_over_none() {
    anonymous_none(Scada::node_opcua).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o6_writes_with_a_certificate_and_a_user_over_every_rsa_policy() {
    certificate_and_user_over_every_rsa_policy(Scada::o6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_writes_with_a_certificate_and_a_user_over_every_rsa_policy() {
    certificate_and_user_over_every_rsa_policy(Scada::node_opcua).await;
}
