//! The REST API under `/api/v1` over a real socket: devices, tags paged through a few
//! thousand simulated tags, JSON errors, the OpenAPI document, and (with the real binary)
//! the status with the config's digest and the last reload's errors.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{eventually, http, http_response as send};
use serde_json::Value as Json;
use uaedge::config::Config;
use uaedge::runtime::Runtime;

/// Two devices; `big` has `TAGS` tags in folders, so that paging crosses devices and folders.
const TAGS: usize = 2_500;
/// `line1`'s tags: three, and the alarm and Acked tags of `level`'s check.
const LINE1: usize = 5;

fn config(web: &str) -> String {
    let mut text = format!(
        "{web}\ndevices:\n  - name: line1\n    driver: enip-sim\n    poll_interval: 50ms\n    tags:\n      - {{ name: count, type: uint32, address: Count, options: {{ signal: counter }} }}\n      - {{ name: speed, type: float64, address: Speed, writable: true, units: m/s, options: {{ signal: constant, value: 1 }} }}\n      - {{ name: level, type: int32, address: Level, options: {{ signal: counter }}, checks: [ {{ kind: limits, name: high, hi: 3 }} ] }}\n  - name: big\n    driver: enip-sim\n    poll_interval: 200ms\n    tags:\n"
    );
    for i in 0..TAGS {
        text.push_str(&format!(
            "      - {{ name: area{}/t{i}, type: int32, address: T{i}, options: {{ signal: counter }} }}\n",
            i % 7
        ));
    }
    text
}

/// Status code and parsed JSON body of `GET path`.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Json) {
    let (status, head, body) = send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .await;
    assert!(
        head.contains("content-type: application/json"),
        "{path}: {head}"
    );
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

async fn start(web: &str) -> (Runtime, std::net::SocketAddr) {
    let port = common::free_port();
    let text = config(&web.replace("PORT", &port.to_string()));
    let rt = Runtime::start(Config::parse("web.yaml", &text).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eventually(Duration::from_secs(10), "web server listening", || async {
        tokio::net::TcpStream::connect(addr).await.ok()
    })
    .await;
    (rt, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_tags_paged_with_json_errors() {
    let (rt, addr) = start("web: { listen: \"127.0.0.1:PORT\" }").await;

    let devices = eventually(Duration::from_secs(10), "both devices up", || async {
        let (status, body) = get(addr, "/api/v1/devices").await;
        assert_eq!(status, 200);
        let list = body["devices"].as_array()?.clone();
        list.iter()
            .all(|d| d["connected"] == true && d["samples_in"].as_u64() > Some(0))
            .then_some(list)
    })
    .await;
    let names: Vec<&str> = devices.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["line1", "big"], "config order");
    assert_eq!(devices[1]["tags"], TAGS as u64);
    assert_eq!(devices[1]["driver"], "enip-sim");
    assert_eq!(devices[1]["bad_tags"], 0);

    let (status, one) = get(addr, "/api/v1/devices/line1").await;
    assert_eq!((status, &one["name"]), (200, &Json::from("line1")));
    let (status, err) = get(addr, "/api/v1/devices/nope").await;
    assert_eq!((status, &err["error"]), (404, &Json::from("not_found")));
    assert!(err["message"].as_str().is_some_and(|m| m.contains("nope")));

    // Every tag once, in pages of 300: devices by name, names sorted within each.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor
            .as_deref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let (status, page) = get(addr, &format!("/api/v1/tags?limit=300{after}")).await;
        assert_eq!(status, 200, "{page}");
        let tags = page["tags"].as_array().expect("tags");
        assert!(tags.len() <= 300);
        seen.extend(
            tags.iter()
                .map(|t| t["path"].as_str().expect("path").to_string()),
        );
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str));
                cursor = Some(next.to_string());
            }
            None => break,
        }
    }
    let total = TAGS + LINE1;
    assert_eq!(seen.len(), total);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        total,
        "no repeats"
    );
    let line1: Vec<&str> = seen[TAGS..].iter().map(String::as_str).collect();
    assert_eq!(
        line1,
        [
            "line1/count",
            "line1/level",
            "line1/level/Alarms/high",
            "line1/level/Alarms/high/Acked",
            "line1/speed"
        ]
    );
    let big = &seen[..TAGS];
    assert!(big.windows(2).all(|w| w[0] < w[1]), "name order");

    // A path prefix, which also filters by folder, and a device filter.
    let (_, page) = get(addr, "/api/v1/tags?prefix=big/area3/&limit=10000").await;
    let area3 = page["tags"].as_array().expect("tags");
    assert_eq!(area3.len(), (0..TAGS).filter(|i| i % 7 == 3).count());
    assert!(area3.iter().all(|t| t["path"]
        .as_str()
        .is_some_and(|p| p.starts_with("big/area3/"))));
    assert_eq!(page["next"], Json::Null);
    let (_, page) = get(addr, "/api/v1/tags?device=line1").await;
    let line1 = page["tags"].as_array().expect("tags");
    assert_eq!(line1.len(), LINE1);
    let speed = &line1[4];
    assert_eq!(speed["type"], "float64");
    assert_eq!(speed["writable"], true);
    assert_eq!(speed["units"], "m/s");
    let (_, page) = get(addr, "/api/v1/tags?prefix=li").await;
    assert_eq!(page["tags"].as_array().map(Vec::len), Some(LINE1));

    // One tag by path, with a live value that moves.
    let first = eventually(Duration::from_secs(10), "a counter value", || async {
        let (status, tag) = get(addr, "/api/v1/tags/line1/count").await;
        assert_eq!(status, 200);
        (tag["quality"] == "Good")
            .then(|| tag["value"].as_u64())
            .flatten()
    })
    .await;
    eventually(Duration::from_secs(10), "the counter moving", || async {
        let (_, tag) = get(addr, "/api/v1/tags/line1/count").await;
        (tag["value"].as_u64()? > first).then_some(())
    })
    .await;
    let (_, tag) = get(addr, "/api/v1/tags/big/area1/t1").await;
    assert_eq!(tag["device"], "big");
    assert_eq!(tag["name"], "area1/t1");
    assert!(tag["source_time"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // A cursor whose device a reload removed resumes at the next device by name.
    let (status, page) = get(addr, "/api/v1/tags?after=gone/x").await;
    assert_eq!(status, 200, "{page}");
    let first = page["tags"][0]["path"].as_str().unwrap_or_default();
    assert_eq!(first, "line1/count", "{page}");

    // Bad input answers a JSON 4xx naming what was wrong.
    for (path, code, word) in [
        ("/api/v1/tags/line1/nope", 404, "line1/nope"),
        ("/api/v1/tags?limit=0", 400, "limit"),
        ("/api/v1/tags?limit=10001", 400, "limit"),
        ("/api/v1/tags?limit=many", 400, "limit"),
        ("/api/v1/tags?device=nope", 404, "nope"),
        ("/api/v1/tags?after=nodevice", 400, "nodevice"),
        ("/api/v1/nothing/here", 404, "openapi.json"),
    ] {
        let (status, err) = get(addr, path).await;
        assert_eq!(status, code, "{path}: {err}");
        let message = err["message"].as_str().unwrap_or_default();
        assert!(message.contains(word), "{path}: {err}");
        assert!(err["error"].is_string(), "{path}: {err}");
    }

    // The OpenAPI document names every route the API serves.
    let (status, doc) = get(addr, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/v1/status",
        "/api/v1/devices",
        "/api/v1/devices/{name}",
        "/api/v1/tags",
        "/api/v1/tags/{path}",
    ] {
        assert!(paths.contains(p), "{p} missing from {paths:?}");
    }
    assert!(doc["components"]["schemas"]["Tag"]["properties"]["quality"].is_object());

    // /metrics and /health are served on the web port too.
    let metrics = http(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(metrics.contains("uaedge_device_connected"), "{metrics}");

    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_alone_serves_no_api() {
    let port = common::free_port();
    let text = config(&format!("metrics: {{ listen: \"127.0.0.1:{port}\" }}"));
    let rt = Runtime::start(Config::parse("metrics.yaml", &text).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let response = eventually(Duration::from_secs(10), "metrics listening", || async {
        tokio::net::TcpStream::connect(addr).await.ok()?;
        Some(
            http(
                addr,
                "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
            .await,
        )
    })
    .await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    rt.shutdown().await.expect("clean shutdown");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The binary records the config it runs and each reload; the API shows both.
#[test]
fn status_shows_config_digest_and_reload_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let good = format!(
        "node: {{ name: api-test }}\nstate_dir: {}\n{}",
        dir.path().join("state").display(),
        config(&format!("web: {{ listen: \"127.0.0.1:{port}\" }}"))
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &good).expect("write config");
    let (child, _log) = common::spawn_uaedge(&path);
    let child = common::KillOnDrop(child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let rt = common::tokio_rt();
    let status = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            eventually(Duration::from_secs(20), "status answering", || async {
                tokio::net::TcpStream::connect(addr).await.ok()?;
                Some(get(addr, "/api/v1/status").await.1)
            })
            .await
        })
    };
    let first = status(&rt);
    assert_eq!(first["node"], "api-test");
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["config"]["file"], path.display().to_string());
    assert_eq!(first["config"]["sha256"], sha256_hex(good.as_bytes()));
    assert_eq!(first["last_reload"], Json::Null);
    assert_eq!(first["devices"]["total"], 2);
    assert_eq!(first["tags"], (TAGS + LINE1) as u64);
    assert!(first["sparkplug"].is_null());

    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(ok.success());
    };
    // A broken file: refused, its error located, the running config's digest unchanged.
    std::fs::write(
        &path,
        good.replace("poll_interval: 50ms", "poll_interval: soon"),
    )
    .expect("write config");
    hup();
    let refused = rt.block_on(eventually(
        Duration::from_secs(20),
        "a refused reload",
        || async {
            Some(get(addr, "/api/v1/status").await.1)
                .filter(|s| s["last_reload"]["outcome"] == "refused")
        },
    ));
    let error = &refused["last_reload"]["errors"][0];
    assert_eq!(error["file"], path.display().to_string());
    assert_eq!(error["line"], 7, "{error}");
    assert!(error["column"].as_u64() > Some(0), "{error}");
    assert!(
        error["key"]
            .as_str()
            .is_some_and(|k| k.contains("poll_interval")),
        "{error}"
    );
    assert_eq!(refused["config"]["sha256"], sha256_hex(good.as_bytes()));

    // A good change: applied, and the digest follows the file.
    let changed = good.replace("name: api-test", "name: api-test-2");
    std::fs::write(&path, &changed).expect("write config");
    hup();
    let applied = rt.block_on(eventually(
        Duration::from_secs(20),
        "an applied reload",
        || async {
            Some(get(addr, "/api/v1/status").await.1)
                .filter(|s| s["last_reload"]["outcome"] == "applied")
        },
    ));
    assert_eq!(applied["config"]["sha256"], sha256_hex(changed.as_bytes()));
    assert_eq!(applied["node"], "api-test-2");
    assert_eq!(applied["last_reload"]["errors"], Json::Array(Vec::new()));
}

fn post(path: &str, headers: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// Logs in: the cookie to send back, the CSRF token, and the whole Set-Cookie line
/// (lower-cased; the tokens are hex).
async fn login(addr: std::net::SocketAddr, user: &str, password: &str) -> (String, String, String) {
    let body = format!(r#"{{"user":"{user}","password":"{password}"}}"#);
    let (status, head, body) = send(addr, &post("/api/v1/login", "", &body)).await;
    assert_eq!(status, 200, "{body}");
    let line = head
        .lines()
        .find(|l| l.starts_with("set-cookie: uaedge_session="))
        .expect("a session cookie")
        .to_string();
    let cookie = line
        .trim_start_matches("set-cookie: ")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    let session: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(session["user"], user);
    let csrf = session["csrf_token"]
        .as_str()
        .expect("a csrf token")
        .to_string();
    (cookie, csrf, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_must_log_in_and_post_with_the_csrf_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = format!(
        "state_dir: {}\nusers:\n  - {{ name: ann, password: s3cret, role: operator }}\n  - {{ name: vic, password: v1ewer, role: viewer }}\nweb: {{ listen: \"127.0.0.1:PORT\" }}",
        dir.path().display()
    );
    let (rt, addr) = start(&users).await;

    // Nothing but the login and the document without a session.
    for path in [
        "/api/v1/status",
        "/api/v1/devices",
        "/api/v1/tags",
        "/api/v1/session",
    ] {
        let (status, err) = get(addr, path).await;
        assert_eq!(
            (status, &err["error"]),
            (401, &Json::from("unauthenticated")),
            "{path}"
        );
    }
    assert_eq!(get(addr, "/api/v1/openapi.json").await.0, 200);

    // Bad bodies: clear 4xx, never a session.
    let (status, _, body) = send(addr, &post("/api/v1/login", "", "{\"user\": \"ann\"")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = send(addr, &post("/api/v1/login", "", "{\"user\": \"ann\"}")).await;
    assert_eq!(status, 400, "{body}");
    let big = format!(
        "{{\"user\": \"ann\", \"password\": \"{}\"}}",
        "x".repeat(100_000)
    );
    let (status, _, body) = send(addr, &post("/api/v1/login", "", &big)).await;
    assert_eq!(status, 413, "{body}");
    let form = "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 22\r\n\r\nuser=ann&password=s3cret";
    let (status, _, body) = send(addr, form).await;
    assert_eq!(status, 415, "a cross-site form cannot log in: {body}");

    // A wrong password, then a good login.
    let (status, _, body) = send(
        addr,
        &post("/api/v1/login", "", r#"{"user":"ann","password":"nope"}"#),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("login_failed"), "{body}");
    let (cookie, csrf, cookie_line) = login(addr, "ann", "s3cret").await;
    assert!(
        cookie_line.contains("httponly") && cookie_line.contains("samesite=strict"),
        "{cookie_line}"
    );
    let with_cookie =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n");
    let (status, _, body) = send(addr, &with_cookie("/api/v1/devices")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(addr, &with_cookie("/api/v1/session")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""role":"operator""#), "{body}");
    assert!(body.contains(&csrf), "{body}");

    // Writes: an operator's reaches the device and is audited; bad ones are refused.
    let auth = format!("Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n");
    let (status, _, body) = send(
        addr,
        &post("/api/v1/tags/line1/speed", &auth, r#"{"value": 2.5}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let written: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (written["value"].as_f64(), written["previous"].as_f64()),
        (Some(2.5), Some(1.0))
    );
    eventually(
        Duration::from_secs(10),
        "the device's next reading",
        || async {
            let (_, _, body) = send(addr, &with_cookie("/api/v1/tags/line1/speed")).await;
            let tag: Json = serde_json::from_str(&body).ok()?;
            (tag["value"] == 2.5).then_some(())
        },
    )
    .await;
    for (path, value, code, error) in [
        ("/api/v1/tags/line1/count", "1", 409, "not_writable"),
        ("/api/v1/tags/line1/speed", "\"fast\"", 400, "bad_value"),
        ("/api/v1/tags/line1/speed", "[1]", 400, "bad_value"),
        ("/api/v1/tags/line1/nope", "1", 404, "not_found"),
    ] {
        let (status, _, body) =
            send(addr, &post(path, &auth, &format!("{{\"value\": {value}}}"))).await;
        assert_eq!(status, code, "{path} {value}: {body}");
        assert!(body.contains(error), "{path} {value}: {body}");
    }
    let (status, _, body) = send(
        addr,
        &post(
            "/api/v1/tags/line1/speed",
            &format!("Cookie: {cookie}\r\n"),
            r#"{"value": 3}"#,
        ),
    )
    .await;
    assert_eq!(status, 403, "no CSRF token: {body}");

    // The alarm of `level` (a counter past 3) is active and unacknowledged; ann acknowledges.
    let key = "line1/level/Alarms/high";
    eventually(Duration::from_secs(10), "the level alarm", || async {
        let (_, _, body) = send(addr, &with_cookie("/api/v1/alarms?retained=true")).await;
        let list: Json = serde_json::from_str(&body).ok()?;
        let alarm = list["alarms"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)?
            .clone();
        (alarm["active"] == true && alarm["acked"] == false).then_some(())
    })
    .await;
    let ack = format!(r#"{{"key": "{key}", "comment": "seen on line 1"}}"#);
    let (status, _, body) = send(addr, &post("/api/v1/alarms/acknowledge", &auth, &ack)).await;
    assert_eq!(status, 200, "{body}");
    let alarm: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (&alarm["acked"], &alarm["user"]),
        (&Json::from(true), &Json::from("ann"))
    );
    assert_eq!(alarm["comment"], "seen on line 1");
    let (status, _, body) = send(addr, &post("/api/v1/alarms/acknowledge", &auth, &ack)).await;
    assert_eq!(status, 409, "twice: {body}");
    let (status, _, body) = send(
        addr,
        &post(
            "/api/v1/alarms/acknowledge",
            &auth,
            r#"{"key": "line1/none"}"#,
        ),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // A viewer reads but may not write or acknowledge, and is told why.
    let (vic_cookie, vic_csrf, _) = login(addr, "vic", "v1ewer").await;
    let vic = format!("Cookie: {vic_cookie}\r\nX-CSRF-Token: {vic_csrf}\r\n");
    let (status, _, body) = send(
        addr,
        &post("/api/v1/tags/line1/speed", &vic, r#"{"value": 9}"#),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("viewer"), "{body}");
    let (status, _, body) = send(addr, &post("/api/v1/alarms/acknowledge", &vic, &ack)).await;
    assert_eq!(status, 403, "{body}");

    // The audit trail has each write and acknowledgement, with user, before and after.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit file");
    let entries: Vec<Json> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let write = entries
        .iter()
        .find(|e| e["action"] == "write" && e["result"] == "done")
        .expect("the write");
    assert_eq!(
        (&write["user"], &write["target"]),
        (&Json::from("ann"), &Json::from("line1/speed"))
    );
    assert_eq!(
        (write["before"].as_f64(), write["after"].as_f64()),
        (Some(1.0), Some(2.5))
    );
    assert_eq!(write["from"], "127.0.0.1");
    assert!(entries.iter().any(|e| e["action"] == "acknowledge"
        && e["target"] == key
        && e["comment"] == "seen on line 1"));

    // A change stream opened in the session ends with it.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    {
        use tokio::io::AsyncWriteExt;
        let request = format!(
            "GET /api/v1/events?prefix=line1/count HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
    }
    // POST without the CSRF token is refused; with it, logout works and ends the session.
    let (status, _, body) = send(
        addr,
        &post("/api/v1/logout", &format!("Cookie: {cookie}\r\n"), ""),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("csrf"), "{body}");
    let (status, _, body) = send(
        addr,
        &post(
            "/api/v1/logout",
            &format!("Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"),
            "",
        ),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _, _) = send(addr, &with_cookie("/api/v1/devices")).await;
    assert_eq!(status, 401);
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.ends_with(b"0\r\n\r\n") {
                return got;
            }
        }
    })
    .await
    .expect("the stream ends within 30 s of the logout");
    let ended = String::from_utf8_lossy(&ended);
    assert!(ended.starts_with("HTTP/1.1 200"), "{ended}");
    assert!(ended.contains("event: tags"), "it was streaming: {ended}");

    // Five failures for one user from one address lock that pair out for a minute.
    for _ in 0..5 {
        let (status, _, _) = send(
            addr,
            &post("/api/v1/login", "", r#"{"user":"vic","password":"guess"}"#),
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, head, body) = send(
        addr,
        &post("/api/v1/login", "", r#"{"user":"vic","password":"v1ewer"}"#),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after: "), "{head}");
    // A body that stops short of its length is answered 408, not waited for.
    let started = std::time::Instant::now();
    let partial = "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\":";
    let (status, _, body) = send(addr, partial).await;
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() < Duration::from_secs(60));
    // Another user from the same address is not locked out.
    let (status, _, _) = send(
        addr,
        &post("/api/v1/login", "", r#"{"user":"ann","password":"s3cret"}"#),
    )
    .await;
    assert_eq!(status, 200);

    rt.shutdown().await.expect("clean shutdown");
}
