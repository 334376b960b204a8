//! `mqtts://` with a private CA, a client certificate and a password from a file, against
//! mosquitto requiring all three; and the same node with a wrong password never connecting.

mod common;
mod sparkplug_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sparkplug_support::{wait_for, Broker};
use uaedge::config::Config;
use uaedge::runtime::Runtime;

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl")
        .status
        .success();
    assert!(ok, "openssl {args:?} failed");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=uaedge test CA",
        ],
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, cn) in [("server", "127.0.0.1"), ("client", "edge1")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    let ok = Command::new("mosquitto_passwd")
        .args(["-c", "-b", "passwd", "edge", "s3cret"])
        .current_dir(dir)
        .output()
        .expect("mosquitto_passwd")
        .status
        .success();
    assert!(ok, "mosquitto_passwd failed");
}

fn config(dir: &Path, port: u16, password_file: &str) -> String {
    format!(
        r#"
node: {{ name: edge1 }}
state_dir: "{dir}"
sparkplug:
  broker: mqtts://127.0.0.1:{port}
  tls: {{ ca_file: "{dir}/ca.pem", cert_file: "{dir}/client.pem", key_file: "{dir}/client.key" }}
  username: edge
  password_file: "{dir}/{password_file}"
  group_id: plant
  reconnect: {{ min: 50ms, max: 100ms }}
devices:
  - name: press
    driver: profinet-sim
    poll_interval: 50ms
    options: {{ station: press-1 }}
    tags:
      - {{ name: count, type: uint32, address: "in:1.1:0", options: {{ signal: counter }} }}
"#,
        dir = dir.display()
    )
}

#[test]
fn mqtts_with_client_certificate_and_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_pki(dir.path());
    std::fs::write(dir.path().join("good.pass"), "s3cret\n").expect("pass");
    std::fs::write(dir.path().join("bad.pass"), "guess\n").expect("pass");
    let d = dir.path().display();
    let broker = Broker::start_with(
        dir.path(),
        &format!(
            "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\nallow_anonymous false\npassword_file {d}/passwd\n"
        ),
    );
    let rt = common::tokio_rt();

    for (pass, works) in [("good.pass", true), ("bad.pass", false)] {
        let state = tempfile::tempdir().expect("state");
        let text = config(dir.path(), broker.port, pass).replace(
            &format!("state_dir: \"{d}\""),
            &format!("state_dir: \"{}\"", state.path().display()),
        );
        let runtime = {
            let _enter = rt.enter();
            Runtime::start(Config::parse("tls.yaml", &text).expect("config"))
        };
        let status = runtime.handle().sparkplug_status().expect("status");
        if works {
            wait_for(Duration::from_secs(20), "born over TLS", || {
                let s = status.snapshot();
                (s.mqtt_connected && s.born && s.samples_published > 0).then_some(())
            });
        } else {
            // Three refused sessions (each CONNECT uses up a bdSeq), none of them connected.
            wait_for(Duration::from_secs(20), "three attempts", || {
                (status.snapshot().bd_seq >= 2).then_some(())
            });
            assert!(!status.snapshot().mqtt_connected);
            assert!(!status.snapshot().born);
        }
        rt.block_on(runtime.shutdown()).expect("clean shutdown");
    }
    drop(broker);
}
