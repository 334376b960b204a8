//! What the console's pages read, over real HTTP: a tag's recent samples from the
//! historian (the trend), the config file with its secrets masked, the OPC UA server's
//! endpoints and sessions and the Sparkplug node's broker in the status, the console's own
//! files with their Content-Security-Policy, a loopback server refusing foreign Host
//! names, and an admin's reload.

mod common;
mod opcua_support;

use std::time::Duration;

use common::{eventually, http_response};
use serde_json::Value as Json;
use uaedge::config::Config;
use uaedge::runtime::Runtime;

/// Status and JSON body of `GET path` as the logged-in viewer (`cookie`).
async fn get(addr: std::net::SocketAddr, cookie: &str, path: &str) -> (u16, Json) {
    let (status, _, body) = http_response(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n"),
    )
    .await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

/// Logs in (waiting for the server): the session cookie and the CSRF token.
async fn login(addr: std::net::SocketAddr, user: &str, password: &str) -> (String, String) {
    let body = format!(r#"{{"user":"{user}","password":"{password}"}}"#);
    let request = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, head, body) = eventually(Duration::from_secs(20), "a login", || async {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => Some(http_response(addr, &request).await),
            Err(_) => None,
        }
    })
    .await;
    assert_eq!(status, 200, "{head}{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let session: Json = serde_json::from_str(&body).expect("json");
    let csrf = session["csrf_token"].as_str().expect("csrf").to_string();
    (cookie, csrf)
}

/// `POST /api/v1/reload` with the session's cookie and CSRF token.
async fn reload(addr: std::net::SocketAddr, (cookie, csrf): &(String, String)) -> (u16, Json) {
    let (status, _, body) = http_response(
        addr,
        &format!("POST /api/v1/reload HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_config_status_and_console_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let file = dir.path().join("views.yaml");
    let text = format!(
        "state_dir: {}\nhistory: {{ commit_window: 100ms }}\nopcua: {{ listen: \"127.0.0.1:0\", endpoints: [none], anonymous: read }}\nsparkplug: {{ broker: \"mqtt://127.0.0.1:{}\", group_id: g, primary_host_id: scada }}\nusers:\n  - {{ name: vic, password: hunter2, role: viewer }}\n  - {{ name: ada, password: adm1n, role: admin }}\nweb: {{ listen: \"127.0.0.1:{port}\" }}\ndevices:\n  - name: line1\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n      - {{ name: count, type: uint32, address: Count, options: {{ signal: counter }} }}\n      - {{ name: quiet, type: uint32, address: Quiet, history: false, options: {{ signal: counter }} }}\n",
        dir.path().join("state").display(),
        common::free_port()
    );
    std::fs::write(&file, &text).expect("write config");
    let rt = Runtime::start(Config::parse(&file.display().to_string(), &text).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (cookie, _) = login(addr, "vic", "hunter2").await;

    // The trend's samples: oldest first, each one more than the one before.
    let points = eventually(
        Duration::from_secs(20),
        "five samples in the history",
        || async {
            let (status, body) =
                get(addr, &cookie, "/api/v1/history?tag=line1/count&seconds=60").await;
            let points = body["points"].as_array().cloned().unwrap_or_default();
            (status == 200 && points.len() >= 5).then_some(points)
        },
    )
    .await;
    let values: Vec<u64> = points.iter().filter_map(|p| p["value"].as_u64()).collect();
    assert_eq!(values.len(), points.len(), "{points:?}");
    assert!(values.windows(2).all(|w| w[1] == w[0] + 1), "{values:?}");
    assert_eq!(points[0]["quality"], "Good");
    let (status, newest) = get(addr, &cookie, "/api/v1/history?tag=line1/count&limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(newest["points"].as_array().map(Vec::len), Some(2));
    assert_eq!(newest["more"], true, "older samples were left out");
    for (query, want) in [
        ("tag=line1/quiet", 404),
        ("tag=nope", 404),
        ("tag=line1/count&limit=0", 400),
        ("tag=line1/count&seconds=0", 400),
        ("tag=line1/count&bogus=1", 400),
    ] {
        let (status, body) = get(addr, &cookie, &format!("/api/v1/history?{query}")).await;
        assert_eq!(status, want, "{query}: {body}");
        assert!(body["message"].as_str().is_some(), "{query}: {body}");
    }

    // The config file, password masked; edited on disk, it no longer is what runs.
    let (status, config) = get(addr, &cookie, "/api/v1/config").await;
    assert_eq!(status, 200, "{config}");
    let shown = config["text"].as_str().expect("text");
    assert!(
        !shown.contains("hunter2") && shown.contains("password: ********"),
        "{shown}"
    );
    assert!(shown.contains("name: line1"), "{shown}");
    assert_eq!(config["running"], true);
    std::fs::write(&file, format!("{text}# edited\n")).expect("edit config");
    let (_, config) = get(addr, &cookie, "/api/v1/config").await;
    assert_eq!(config["running"], false);

    // The OPC UA server once it listens, and the Sparkplug node's names.
    let opcua = eventually(
        Duration::from_secs(30),
        "the OPC UA server in the status",
        || async {
            let (_, status) = get(addr, &cookie, "/api/v1/status").await;
            (status["opcua"]["running"] == true).then_some(status)
        },
    )
    .await;
    let endpoints = opcua["opcua"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1, "{opcua}");
    assert_eq!(endpoints[0]["security_policy"], "None");
    assert_eq!(endpoints[0]["security_mode"], "None");
    let url = format!(
        "opc.tcp://127.0.0.1:{}/",
        rt.opcua()
            .and_then(|s| s.local_addr())
            .expect("port")
            .port()
    );
    assert_eq!(endpoints[0]["url"], url.as_str());
    assert_eq!(opcua["opcua"]["sessions"], 0);
    // A client's session, counted.
    let mut scada = opcua_support::Scada::start();
    scada.connect_none(&url);
    let (_, with_one) = get(addr, &cookie, "/api/v1/status").await;
    assert_eq!(with_one["opcua"]["sessions"], 1, "{}", with_one["opcua"]);
    drop(scada);
    let sparkplug = &opcua["sparkplug"];
    assert_eq!(
        (&sparkplug["group_id"], &sparkplug["primary_host_id"]),
        (&Json::from("g"), &Json::from("scada")),
        "{sparkplug}"
    );
    assert!(
        sparkplug["broker"]
            .as_str()
            .is_some_and(|b| b.starts_with("mqtt://127.0.0.1:")),
        "{sparkplug}"
    );
    assert_eq!(
        sparkplug["brokers"][0]["url"], sparkplug["broker"],
        "{sparkplug}"
    );
    assert_eq!(sparkplug["brokers"][0]["current"], true, "{sparkplug}");
    assert_eq!(sparkplug["server_switches"], 0, "{sparkplug}");

    // A page elsewhere that rebinds its name to 127.0.0.1 is not served.
    let (status, _, body) = http_response(
        addr,
        "GET /api/v1/status HTTP/1.1\r\nHost: evil.example:8480\r\n\r\n",
    )
    .await;
    assert_eq!(status, 421, "{body}");
    for host in ["127.0.0.1:1", "[::1]:1", "LOCALHOST"] {
        let (status, _, _) = http_response(
            addr,
            &format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 200, "{host}");
    }

    // The console: its page under a strict policy, its files with their types.
    let (status, head, body) =
        http_response(addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(body.contains("/console/app.js"), "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(!head.contains("unsafe-inline"), "{head}");
    for (path, kind) in [
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let (status, head, _) = http_response(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{path}: {head}"
        );
    }

    // Reloads are the service's (the binary's): a runtime inside another program takes
    // none, and says so.
    let (status, refused) = reload(addr, &login(addr, "vic", "hunter2").await).await;
    assert_eq!((status, &refused["error"]), (403, &Json::from("forbidden")));
    let (status, refused) = reload(addr, &login(addr, "ada", "adm1n").await).await;
    assert_eq!(
        (status, &refused["error"]),
        (503, &Json::from("not_served")),
        "{refused}"
    );

    rt.shutdown().await.expect("clean shutdown");
}

/// An admin reloads the config from the API, as SIGHUP would, and sees the outcome; an
/// operator may not.
#[test]
fn an_admin_reloads_the_config_and_sees_the_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let path = dir.path().join("config.yaml");
    let good = format!(
        "node: {{ name: reload-test }}\nstate_dir: {}\nusers:\n  - {{ name: ada, password: adm1n, role: admin }}\n  - {{ name: ann, password: s3cret, role: operator }}\nweb: {{ listen: \"127.0.0.1:{port}\" }}\ndevices:\n  - name: line1\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n      - {{ name: count, type: uint32, address: Count, options: {{ signal: counter }} }}\n",
        dir.path().join("state").display()
    );
    std::fs::write(&path, &good).expect("write config");
    let (child, _log) = common::spawn_uaedge(&path);
    let _child = common::KillOnDrop(child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    common::tokio_rt().block_on(async {
        let admin = login(addr, "ada", "adm1n").await;
        let operator = login(addr, "ann", "s3cret").await;

        let (status, refused) = reload(addr, &operator).await;
        assert_eq!(
            (status, &refused["error"]),
            (403, &Json::from("forbidden")),
            "{refused}"
        );

        std::fs::write(
            &path,
            good.replace("poll_interval: 100ms", "poll_interval: soon"),
        )
        .expect("write config");
        let (status, outcome) = reload(addr, &admin).await;
        assert_eq!(
            (status, &outcome["outcome"]),
            (200, &Json::from("refused")),
            "{outcome}"
        );
        let error = &outcome["errors"][0];
        assert_eq!(error["file"], path.display().to_string());
        assert!(
            error["key"]
                .as_str()
                .is_some_and(|k| k.contains("poll_interval")),
            "{error}"
        );

        std::fs::write(&path, good.replace("name: reload-test", "name: reloaded"))
            .expect("write config");
        let (status, outcome) = reload(addr, &admin).await;
        assert_eq!(
            (status, &outcome["outcome"]),
            (200, &Json::from("applied")),
            "{outcome}"
        );
        let (_, now) = get(addr, &admin.0, "/api/v1/status").await;
        assert_eq!(now["node"], "reloaded");
        let (status, outcome) = reload(addr, &admin).await;
        assert_eq!(
            (status, &outcome["outcome"]),
            (200, &Json::from("unchanged")),
            "{outcome}"
        );
    });
}
